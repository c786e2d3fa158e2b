"""Settings every test shares (no network, no telemetry) and the real Kubernetes control planes.

The control planes are built by scripts/build-control-plane.sh (scripts/setup.sh runs it). A test that
needs one fails, never skips, when it cannot be started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.controlplane import ControlPlane

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "false")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A whole cluster: etcd, apiserver, controller-manager, scheduler and a fake node (kwok)."""
    from support.controlplane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """An API only (etcd and the apiserver) with the project's CRDs: for roles that read and write
    custom resources, without controllers or an operator acting on them."""
    from support.controlplane import ControlPlane

    plane = ControlPlane(tmp_path_factory.mktemp("api-server"), workloads=False).start()
    try:
        plane.apply_crds(ROOT / "crds")
        yield plane
    finally:
        plane.stop()
