#!/usr/bin/env bash
# Builds the memory-operator image from the Dockerfile with buildah: no daemon, as root, into the
# local containers-storage, with chroot isolation (no OCI runtime needed).
#
#   scripts/build-image.sh                # the operator and jobs image: $REPOSITORY:<version>
#   scripts/build-image.sh --embedder     # with the local embedding model: $REPOSITORY:server-1
#   scripts/build-image.sh --tag registry.example.com/memory-operator:0.1.0 [--embedder]
#
# Installs buildah and debootstrap with apt-get when they are missing, and makes the base image
# (debian:bookworm-slim) from Debian's packages with debootstrap when it is not in the local storage.
# The build machine's pip settings reach the build as build arguments and read-only mounts, never as
# Dockerfile changes: PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST, PIP_FIND_LINKS (local folders
# are mounted), pip's configuration files, the CA bundle pip trusts, and pip's cache (so that a rebuild
# downloads nothing). Environment: REPOSITORY, REVISION, PIP_CACHE (host folder), BASE_IMAGE.
# Push afterwards with `buildah push TAG docker://TAG`.
set -euo pipefail
cd "$(dirname "$0")/.."

REPOSITORY="${REPOSITORY:-ghcr.io/memory-operator/memory-operator}"
BASE_IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# chroot isolation: no OCI runtime needed. The storage driver is containers-storage's choice (overlay
# where the kernel has it); STORAGE_DRIVER=vfs works everywhere else (the image tests honour it too).
export BUILDAH_ISOLATION=chroot
buildah_storage=(${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"})

embedder=false
tag=""
while [ $# -gt 0 ]; do
    case "$1" in
        --embedder) embedder=true ;;
        --tag) tag="$2"; shift ;;
        *) echo "usage: $0 [--embedder] [--tag IMAGE]" >&2; exit 2 ;;
    esac
    shift
done

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)"
if [ -z "$tag" ]; then
    if [ "$embedder" = true ]; then
        # The builtin memory server's default image (operator/memory_operator/images.py).
        tag="$(sed -n 's/^DEFAULT_BUILTIN_SERVER_IMAGE = "\(.*\)"$/\1/p' operator/memory_operator/images.py)"
    else
        tag="$REPOSITORY:$version"
    fi
fi

if [ "$(id -u)" != 0 ]; then
    echo "build-image: run as root (buildah with chroot isolation)" >&2
    exit 1
fi

install_tools() {
    command -v buildah >/dev/null && command -v debootstrap >/dev/null && return
    export DEBIAN_FRONTEND=noninteractive
    apt-get install --yes --no-install-recommends buildah debootstrap \
        || { apt-get update && apt-get install --yes --no-install-recommends buildah debootstrap; }
}

# debian:<suite>-slim as Debian publishes it: a minbase system without documentation, man pages,
# locales or package lists, apt cleaning its caches after each install.
make_base_image() {
    local suite="${BASE_IMAGE#debian:}"
    suite="${suite%-slim}"
    local rootfs container
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' RETURN
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    debootstrap --variant=minbase "$suite" "$rootfs" "$DEBIAN_MIRROR"
    cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR $suite main
deb $DEBIAN_MIRROR $suite-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security $suite-security main
EOF
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
        "$rootfs"/usr/share/doc/*/[!c]* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    container="$(buildah "${buildah_storage[@]}" from scratch)"
    buildah "${buildah_storage[@]}" copy --quiet "$container" "$rootfs" / >/dev/null
    # Debian's updates and security updates, as in the published image.
    buildah "${buildah_storage[@]}" run --isolation chroot --network host "$container" -- sh -ec \
        'apt-get update; apt-get upgrade --yes; rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log'
    buildah "${buildah_storage[@]}" config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$container"
    buildah "${buildah_storage[@]}" commit --quiet --rm "$container" "docker.io/library/$BASE_IMAGE" >/dev/null
}

# pip's settings of this machine, as build arguments and read-only mounts.
pip_build_options() {
    local name value folder
    for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_FIND_LINKS; do
        value="${!name:-}"
        [ -n "$value" ] && build_options+=(--build-arg "$name=$value")
    done
    for folder in ${PIP_FIND_LINKS:-}; do
        [ -d "$folder" ] && build_options+=(--volume "$folder:$folder:ro")
    done
    # The configuration files pip reads as root, at the paths pip looks for them in the build.
    [ -f /etc/pip.conf ] && build_options+=(--volume /etc/pip.conf:/etc/pip.conf:ro)
    [ -f "$HOME/.config/pip/pip.conf" ] && build_options+=(--volume "$HOME/.config/pip/pip.conf:/root/.config/pip/pip.conf:ro")
    [ -n "${PIP_CONFIG_FILE:-}" ] && [ -f "$PIP_CONFIG_FILE" ] \
        && build_options+=(--volume "$PIP_CONFIG_FILE:/etc/xdg/pip/pip.conf:ro")
    # The CA bundle pip trusts here (a proxy's authority may be in it), at a path of its own: the image's
    # own /etc/ssl/certs is Debian's and stays so.
    local ca="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
    ca="${ca:-/etc/ssl/certs/ca-certificates.crt}"
    if [ -f "$ca" ]; then
        build_options+=(--volume "$ca:/usr/local/share/build-ca/ca-certificates.crt:ro")
        build_options+=(--build-arg PIP_CERT=/usr/local/share/build-ca/ca-certificates.crt)
    fi
    local cache="${PIP_CACHE:-$HOME/.cache/pip}"
    mkdir -p "$cache"
    build_options+=(--volume "$cache:/root/.cache/pip")
}

install_tools
if ! buildah "${buildah_storage[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "build-image: making $BASE_IMAGE with debootstrap"
    make_base_image
fi

build_options=(
    --layers --pull=never --network host
    --build-arg "BASE_IMAGE=$BASE_IMAGE"
    --build-arg "INCLUDE_EMBEDDING_MODEL=$embedder"
    --build-arg "VERSION=$version"
    --build-arg "REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
)
pip_build_options
echo "build-image: building $tag (embedding model: $embedder)"
previous="$(buildah "${buildah_storage[@]}" inspect --type image --format '{{.FromImageID}}' "$tag" 2>/dev/null || true)"
start=$SECONDS
build() { buildah "${buildah_storage[@]}" build --isolation chroot "${build_options[@]}" --tag "$tag" --file Dockerfile .; }
# Each RUN step starts from a sealed in-memory copy of buildah's chroot runner; sealing it fails now and
# then with "sealing memfd copy: Device or resource busy" while the kernel still holds a writable
# mapping of the copy. Only that error is retried, once: the steps built before it are cached.
output="$(mktemp)"
trap 'rm -f "$output"' EXIT
if ! build 2>&1 | tee "$output"; then
    grep -q "sealing memfd copy: Device or resource busy" "$output" || exit 1
    echo "build-image: buildah could not start a step (a transient error): building again"
    build
fi
echo "build-image: built $tag in $((SECONDS - start)) s"
# The image this tag named before (over a GB with the model) would stay behind untagged on every rebuild;
# the build cache is kept (only an image still in use by a container stays).
current="$(buildah "${buildah_storage[@]}" inspect --type image --format '{{.FromImageID}}' "$tag")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    buildah "${buildah_storage[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
