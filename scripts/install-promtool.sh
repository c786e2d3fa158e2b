#!/usr/bin/env bash
# Installs Prometheus's `promtool` into .tools/bin/, for the alert rule tests (`promtool test rules`).
#
# It comes from Debian's `prometheus` package: the .deb is downloaded (`apt-get download`, no root
# needed once the package lists exist) and only promtool is unpacked from it; nothing is installed
# system-wide and no service starts. Idempotent: nothing is downloaded when promtool is there and runs.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR="${TOOLS_BIN_DIR:-.tools/bin}"
PACKAGE="prometheus"

if "$BIN_DIR/promtool" --version >/dev/null 2>&1; then
    echo "promtool already in $BIN_DIR"
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "install-promtool: apt-get and dpkg-deb are needed (Debian's $PACKAGE package ships promtool)" >&2
    exit 1
fi

mkdir -p "$BIN_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt's download user writes here

# No package lists yet (a fresh machine): fetch them once, as root can.
if ! (cd "$work" && apt-get download "$PACKAGE" >/dev/null 2>&1); then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq
    fi
    (cd "$work" && apt-get download "$PACKAGE" >/dev/null)
fi
dpkg-deb -x "$work"/"$PACKAGE"_*.deb "$work/root"
install -m 0755 "$work/root/usr/bin/promtool" "$BIN_DIR/promtool.partial"
mv "$BIN_DIR/promtool.partial" "$BIN_DIR/promtool" # atomic: never a truncated binary
"$BIN_DIR/promtool" --version 2>&1 | head -1
