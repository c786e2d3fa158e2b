#!/usr/bin/env bash
# Prepares a development environment in .venv: the project with its embedded and test extras, the
# kubectl, helm and promtool binaries the tests use, and the Kubernetes control plane the end-to-end
# tests run against (built from Go modules; needs Go). Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }

# PyTorch pinned first, so that sentence-transformers takes this build instead of the newest one
# (with its several GB of CUDA packages). pip finds the CPU wheel through its configured find-links.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    pip_install "torch==2.13.0"
fi
pip_install -e ".[embedded,test]"
PYTHON="$VENV/bin/python" bash scripts/install-tools.sh
bash scripts/install-promtool.sh ||
    echo "setup: promtool could not be installed: the alert rule tests will fail" >&2
if command -v go >/dev/null; then
    bash scripts/build-control-plane.sh
else
    echo "setup: Go is not installed: the end-to-end tests will fail until scripts/build-control-plane.sh" \
        "has built the control plane (docs/testing.md)" >&2
fi
