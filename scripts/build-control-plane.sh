#!/usr/bin/env bash
# Builds the control plane the end-to-end tests run against, from Go modules, into .tools/bin/:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler (pinned in tests/controlplane/go.mod)
# and kwok (fake nodes whose pods become Running and Ready). Go's build cache makes a second run fast;
# a binary already built from the same go.mod/go.sum is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

KWOK_VERSION=v0.8.0
BIN="$PWD/.tools/bin"
MODULE=tests/controlplane
mkdir -p "$BIN"

if ! command -v go >/dev/null; then
    echo "build-control-plane: Go (1.24 or newer) is needed to build the tests' control plane" >&2
    exit 1
fi

stamp="$BIN/.control-plane.stamp"
want="$(cat "$MODULE/go.mod" "$MODULE/go.sum" "$MODULE"/etcd/*.go "$MODULE"/kwok/*.yaml | sha256sum | cut -d' ' -f1)"
want="$want kwok-$KWOK_VERSION"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && [ -x "$BIN/etcd" ] && [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] \
    && [ -x "$BIN/kube-scheduler" ] && [ -x "$BIN/kwok" ] && [ -f "$BIN/../kwok/stages.yaml" ]; then
    exit 0
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The version the servers report (helm and kubectl compare it with what they support).
k8s="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$MODULE/go.mod")"
minor="$(echo "$k8s" | cut -d. -f2)"
version_pkg=k8s.io/component-base/version
ldflags="-s -X $version_pkg.gitVersion=$k8s -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
ldflags="$ldflags -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=1970-01-01T00:00:00Z"
(
    cd "$MODULE"
    go build -trimpath -ldflags="$ldflags" -o "$BIN/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
    go build -trimpath -ldflags=-s -o "$BIN/etcd" ./etcd
)
GOBIN="$BIN" go install -trimpath -ldflags=-s "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

# kwok's own stages, minus the one that completes Job pods (the tests finish those themselves with the
# termination message a job writes, as a kubelet reports it) and with a deleted pod stopping as a
# kubelet stops it before it goes (ours, in tests/controlplane/kwok/).
stages="$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION/kustomize/stage"
mkdir -p "$BIN/../kwok"
for stage in "$stages/node/fast/node-initialize.yaml" "$stages/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
    "$stages/pod/fast/pod-ready.yaml" "$MODULE/kwok/pod-stop.yaml" "$MODULE/kwok/pod-delete.yaml"; do
    echo "---"
    cat "$stage"
done > "$BIN/../kwok/stages.yaml"
echo "$want" > "$stamp"
