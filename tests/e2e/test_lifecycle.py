"""Deletion, namespace deletion and an operator killed mid-reconcile, on a real control plane."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import store, wait_for
from e2e.conftest import Cluster
from e2e.test_backup import backup_phase, backup_store, memory_backup
from e2e.test_store import claim_sizes, create_store, sts_replicas, wait_phase
from memory_operator import labels
from memory_operator.render import collection, names


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_deletion_collects_children_and_keeps_or_deletes_volumes(cluster: Cluster, policy: str) -> None:
    ns = cluster.client.namespace(f"del-{policy.lower()}")
    body = backup_store(ns)
    body["spec"]["deletionPolicy"] = policy
    s = create_store(cluster, body)
    wait_phase(cluster, ns, "bk", "Ready")
    store_uid = cluster.client.get("MemoryStore", ns, "bk")["metadata"]["uid"]  # type: ignore[index]
    claims = wait_for(lambda: (c := claim_sizes(cluster, ns)) and len(c) == 2 and c, "two claims")
    backup_claim = cluster.client.get("PersistentVolumeClaim", ns, names.backup_claim_name(s))
    assert backup_claim is not None and backup_claim["metadata"]["ownerReferences"][0]["uid"] == store_uid
    # A finished backup of the store: kept with `Retain`, deleted with `Delete`.
    cluster.client.create(memory_backup(ns, "bk", "bk-old"))
    wait_for(lambda: backup_phase(cluster, ns, "bk-old") == "Running", "the backup running")
    cluster.jobs.finish(
        ns, names.backup_job_name("bk-old"), {"phase": "Failed", "error": "test"}, succeeded=False
    )
    wait_for(lambda: backup_phase(cluster, ns, "bk-old") == "Failed", "the backup finished")
    cluster.client.delete("MemoryStore", ns, "bk")
    wait_for(lambda: cluster.client.get("MemoryStore", ns, "bk") is None, "the store gone")
    # The garbage collector removes what the store owned.
    for kind in ("StatefulSet", "Deployment", "Service", "NetworkPolicy", "CronJob"):
        wait_for(lambda kind=kind: cluster.client.list(kind, ns) == [], f"every {kind} collected", timeout=90)
    if policy == "Retain":
        kept = cluster.client.get("MemoryBackup", ns, "bk-old")
        assert kept is not None and kept["metadata"]["labels"]["memory-operator.io/retained-from"] == "bk"
        for claim_name in claims:
            left = cluster.client.get("PersistentVolumeClaim", ns, claim_name)
            assert left is not None, claim_name
            assert left["metadata"]["labels"]["memory-operator.io/retained-from"] == "bk"
            assert not left["metadata"].get("ownerReferences")
            assert not left["metadata"].get("deletionTimestamp")
    else:
        wait_for(lambda: claim_sizes(cluster, ns) == {}, "every claim deleted", timeout=90)
        wait_for(lambda: cluster.client.get("MemoryBackup", ns, "bk-old") is None, "the backup deleted")


def test_a_store_deleted_as_its_volumes_are_made_is_still_released(cluster: Cluster) -> None:
    """The finalizer is on the store before its StatefulSet exists (it goes on with the first children),
    so a store deleted as soon as its StatefulSet shows is released as its `deletionPolicy` says."""
    ns = cluster.client.namespace("del-early")
    s = create_store(cluster, store(ns, "early", deletionPolicy="Delete"))
    sts = wait_for(
        lambda: cluster.client.get("StatefulSet", ns, names.qdrant_statefulset_name(s)), "the StatefulSet"
    )
    body = cluster.client.get("MemoryStore", ns, "early")
    assert body is not None and labels.FINALIZER in body["metadata"].get("finalizers", [])
    assert sts["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    wait_for(lambda: claim_sizes(cluster, ns), "the StatefulSet's claim")
    cluster.client.delete("MemoryStore", ns, "early")
    wait_for(lambda: cluster.client.get("MemoryStore", ns, "early") is None, "the store gone")
    wait_for(lambda: claim_sizes(cluster, ns) == {}, "every claim deleted", timeout=90)


def test_deleting_a_namespace_with_stores_completes(cluster: Cluster) -> None:
    ns = cluster.client.namespace("doomed")
    create_store(cluster, store(ns, "one"))
    create_store(cluster, backup_store(ns))
    wait_phase(cluster, ns, "one", "Ready")
    wait_phase(cluster, ns, "bk", "Ready")
    assert cluster.client.get("MemoryStore", ns, "one")["metadata"].get("finalizers")  # type: ignore[index]
    assert cluster.client.delete("Namespace", None, ns) == 200
    wait_for(lambda: cluster.client.get("Namespace", None, ns) is None, "the namespace gone", timeout=120)


def test_deleting_a_namespace_while_a_job_runs_completes(cluster: Cluster) -> None:
    """A running job's pod keeps the Job controller's finalizer until it has stopped: the namespace goes
    once its pods have, and the stores with them."""
    ns = cluster.client.namespace("doomed-busy", manual_collection=True)
    s = create_store(cluster, store(ns, "busy"))
    selector = f"batch.kubernetes.io/job-name={collection.job_name(s)}"

    def job_pod_running() -> bool:
        return any(
            (p.get("status") or {}).get("phase") == "Running"
            for p in cluster.client.list("Pod", ns, selector)
        )

    wait_for(job_pod_running, "the collection Job's pod running")
    assert cluster.client.delete("Namespace", None, ns) == 200
    wait_for(lambda: cluster.client.get("Namespace", None, ns) is None, "the namespace gone", timeout=120)


def no_duplicates(cluster: Cluster, ns: str) -> None:
    for kind in ("StatefulSet", "Deployment", "Secret", "Service", "ConfigMap", "NetworkPolicy"):
        listed = [o["metadata"]["name"] for o in cluster.client.list(kind, ns)]
        assert len(listed) == len(set(listed)), kind
    assert len(cluster.client.list("StatefulSet", ns)) == 1
    assert len(cluster.client.list("Deployment", ns)) == 1


def child_exists(cluster: Cluster, kind: str, name: Callable[[Any], str]) -> Callable[[str, Any], bool]:
    return lambda ns, s: cluster.client.get(kind, ns, name(s)) is not None


@pytest.mark.parametrize("point", ["credentials", "statefulset", "deployment", "status"])
def test_operator_killed_mid_reconcile_converges_without_new_keys(cluster: Cluster, point: str) -> None:
    """SIGKILL the operator as soon as the reconcile of a new store has got this far, change the store,
    start the operator again: one of each child, the same keys, the change applied."""
    ns = cluster.client.namespace(f"restart-{point}")
    reached: dict[str, Callable[[str, Any], bool]] = {
        "credentials": child_exists(cluster, "Secret", names.credentials_secret_name),
        "statefulset": child_exists(cluster, "StatefulSet", names.qdrant_statefulset_name),
        "deployment": child_exists(cluster, "Deployment", names.server_deployment_name),
        "status": lambda ns, s: bool((cluster.client.get("MemoryStore", ns, "demo") or {}).get("status")),
    }
    try:
        s = create_store(cluster, store(ns, "demo"))
        deadline = time.monotonic() + 60
        while not reached[point](ns, s):
            assert time.monotonic() < deadline, f"the reconcile never reached {point}"
            time.sleep(0.02)
        cluster.operator.kill()
        secret = cluster.client.get("Secret", ns, names.credentials_secret_name(s))
        assert secret is not None, "the keys are written before anything that uses them"
        cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"replicas": 3}}})
    finally:
        if not cluster.operator.running:
            cluster.operator.start()
    wait_for(lambda: sts_replicas(cluster, ns, s) == 3, "3 replicas")
    wait_phase(cluster, ns, "demo", "Ready")
    again = cluster.client.get("Secret", ns, names.credentials_secret_name(s))
    assert again is not None and again["data"] == secret["data"]
    assert again["metadata"]["uid"] == secret["metadata"]["uid"]
    no_duplicates(cluster, ns)
