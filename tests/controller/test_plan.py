"""Desired versus live children: the decisions that keep a converged store write-free."""

from __future__ import annotations

import copy
from typing import Any

from memory_operator.controller import plan

STORE = {
    "apiVersion": "memory-operator.io/v1alpha1",
    "kind": "MemoryStore",
    "metadata": {"name": "demo", "namespace": "ns", "uid": "u-1"},
}


def configmap(name: str = "demo-config", data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns", "labels": {"memory-operator.io/store": "demo"}},
        "data": data or {"a": "1"},
    }


def live_copy(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: the manifest plus server-set fields."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="x", resourceVersion="7", creationTimestamp="2025-01-01T00:00:00Z")
    return live


def test_owned_sets_a_controller_reference() -> None:
    child = plan.owned(configmap(), STORE)
    assert child["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryStore",
            "name": "demo",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_equal_child_needs_no_write() -> None:
    desired = plan.stamped(plan.owned(configmap(), STORE))
    result = plan.plan([desired], [live_copy(desired)])
    assert result.apply == [] and result.prune == [] and result.unchanged == 1


def test_missing_child_is_applied() -> None:
    desired = plan.stamped(configmap())
    assert plan.plan([desired], []).apply == [desired]


def test_changed_rendering_is_applied_even_when_a_field_was_only_removed() -> None:
    old = plan.stamped(configmap(data={"a": "1", "b": "2"}))
    new = plan.stamped(configmap(data={"a": "1"}))
    # The new manifest is a subset of the live object, yet it must be applied to drop `b`.
    assert plan.is_subset(configmap(data={"a": "1"}), live_copy(old))
    assert plan.plan([new], [live_copy(old)]).apply == [new]


def test_drift_by_someone_else_is_repaired() -> None:
    desired = plan.stamped(configmap())
    live = live_copy(desired)
    live["data"]["a"] = "edited"
    assert plan.plan([desired], [live]).apply == [desired]


def test_server_defaults_are_not_drift() -> None:
    desired = plan.stamped(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    live = live_copy(desired)
    live["spec"]["ports"][0]["protocol"] = "TCP"
    live["spec"]["clusterIP"] = "10.0.0.1"
    assert plan.plan([desired], [live]).unchanged == 1


def test_secret_string_data_compares_with_stored_data() -> None:
    desired = plan.stamped(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "k", "namespace": "ns"},
            "stringData": {"api-key": "s3cret"},
        }
    )
    live = live_copy(desired)
    live["data"] = {"api-key": "czNjcmV0"}
    del live["stringData"]
    assert not plan.needs_apply(desired, live)


def test_children_no_longer_rendered_are_pruned_but_never_volumes_or_secrets() -> None:
    keep = plan.stamped(configmap("demo-config"))
    stale = [
        live_copy(configmap("demo-old")),
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "ns"},
        },
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": "ns"}},
    ]
    result = plan.plan([keep], [live_copy(keep), *stale])
    assert result.prune == [plan.ObjectRef("v1", "ConfigMap", "ns", "demo-old")]


def test_hash_ignores_its_own_annotation() -> None:
    desired = plan.stamped(configmap())
    assert plan.manifest_hash(desired) == plan.manifest_hash(configmap())


def _sts(size: str) -> dict:
    return {
        "metadata": {"name": "q"},
        "spec": {
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": size}}}}
            ]
        },
    }


def _claim(name: str, size: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"resources": {"requests": {"storage": size}}}}


def test_claim_templates_changed_only_when_the_templates_differ() -> None:
    assert not plan.claim_templates_changed(_sts("1Gi"), None)
    assert not plan.claim_templates_changed(_sts("1Gi"), _sts("1Gi"))
    assert plan.claim_templates_changed(_sts("2Gi"), _sts("1Gi"))


def test_claims_to_grow_are_the_templates_claims_below_the_new_size() -> None:
    claims = [
        _claim("data-q-0", "1Gi"),
        _claim("data-q-1", "2048Mi"),
        _claim("data-other-0", "1Gi"),
        _claim("logs-q-0", "1Gi"),
    ]
    assert plan.claims_to_grow(_sts("2Gi"), claims) == [("data-q-0", "2Gi")]
