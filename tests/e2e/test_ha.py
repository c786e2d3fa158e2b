"""Two operator replicas: one reconciles at a time, and the other takes over when it is killed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.cluster import OperatorProcess, operator_command, store, wait_for
from e2e.conftest import Cluster
from e2e.test_store import wait_phase

PEERING = "/apis/kopf.dev/v1/clusterkopfpeerings/memory-operator"


@pytest.fixture
def second(cluster: Cluster) -> Iterator[OperatorProcess]:
    args, env = operator_command(cluster.client, pod_name="memory-operator-1")
    env.update(cluster.operator.env_overrides())
    replica = OperatorProcess(args, env, cluster.operator.kubeconfig, cluster.plane.logs / "operator-1.log")
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()
        if not cluster.operator.running:
            cluster.operator.start()


def peers(cluster: Cluster) -> dict[str, int]:
    """Live replicas by name, with their priority."""
    body = cluster.client.http.get(PEERING).json()
    return {name: int(info["priority"]) for name, info in (body.get("status") or {}).items()}


def applied_here(log: OperatorProcess, namespace: str) -> bool:
    return f"applying StatefulSet {namespace}/" in log.log_path.read_text(errors="replace")


def test_one_replica_reconciles_and_the_other_takes_over(cluster: Cluster, second: OperatorProcess) -> None:
    found = wait_for(
        lambda: (p := peers(cluster)) and len(p) == 2 and p, "both replicas in the peering object"
    )
    active_name = max(found, key=lambda name: found[name])
    active, standby = (
        (cluster.operator, second) if active_name == "memory-operator-0" else (second, cluster.operator)
    )
    ns = cluster.client.namespace("ha-first")
    cluster.client.create(store(ns, "one"))
    wait_phase(cluster, ns, "one", "Ready")
    assert applied_here(active, ns) and not applied_here(standby, ns)

    active.kill()
    ns = cluster.client.namespace("ha-second")
    cluster.client.create(store(ns, "two"))
    # The standby waits out the killed replica's lifetime (10 s here), then reconciles.
    wait_phase(cluster, ns, "two", "Ready", timeout=90)
    assert applied_here(standby, ns)
