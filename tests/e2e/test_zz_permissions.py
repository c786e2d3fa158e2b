"""Run last: the operator used every permission it declares, and nothing else (the apiserver's audit
log of the whole end-to-end session). Needs the whole suite: `pytest tests/e2e`."""

from __future__ import annotations

from pathlib import Path

from e2e.cluster import OPERATOR_USER
from e2e.conftest import RAN, Cluster
from memory_operator.controller import permissions

HERE = Path(__file__).parent


def used_permissions(cluster: Cluster) -> set[tuple[str, str, str]]:
    used = set()
    for event in cluster.plane.audit_events():
        if event.get("user", {}).get("username") != OPERATOR_USER:
            continue
        if (event.get("annotations") or {}).get("authorization.k8s.io/decision") != "allow":
            continue
        ref = event.get("objectRef")
        if not ref:
            continue  # discovery and version: open to every authenticated user
        resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return used


def test_the_operator_used_exactly_what_it_declares(cluster: Cluster) -> None:
    # test_upgrade runs operators of its own on a control plane of its own.
    modules = {p.stem for p in HERE.glob("test_*.py")} - {Path(__file__).stem, "test_upgrade"}
    assert modules <= RAN, f"run the whole end-to-end suite first; not run: {sorted(modules - RAN)}"
    every = (*permissions.NAMESPACED, *permissions.DISCOVERY, *permissions.ALL_NAMESPACES)
    declared = permissions.granted(*every)
    used = permissions.with_apply_creates(used_permissions(cluster), *every)
    assert (sorted(used - declared), sorted(declared - permissions.NOT_REQUESTED - used)) == ([], []), (
        "(used but not declared, declared but never used)"
    )
