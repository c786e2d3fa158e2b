"""A Qdrant upgrade on a real control plane: the backup first, then the StatefulSet controller restarts one
node at a time as the operator lowers the partition, each step after the upgrade check Job's command
(run here against a fake Qdrant cluster) found every shard active."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backup.fake_qdrant import FakeCluster
from e2e.cluster import condition, run_job_command, store, wait_for
from e2e.conftest import Cluster
from e2e.test_backup import backup_phase, qdrant_key
from e2e.test_store import create_store, wait_phase, warning_events
from memory_operator import env, images
from memory_operator.api.store import MemoryStore
from memory_operator.render import names

OLD = images.DEFAULT_QDRANT_IMAGE
NEW = "docker.io/qdrant/qdrant:v1.17.0-unprivileged"
POINTS = {
    f"{i:04x}": {"vector": [0.1 * i, 0.2, 0.3, 0.4], "payload": {"data": f"fact {i}", "user_id": "ada"}}
    for i in range(1, 7)
}


def statefulset(cluster: Cluster, ns: str, s: MemoryStore) -> dict[str, Any]:
    found = cluster.client.get("StatefulSet", ns, names.qdrant_statefulset_name(s))
    assert found is not None
    return found


def partition(cluster: Cluster, ns: str, s: MemoryStore) -> int | None:
    strategy = statefulset(cluster, ns, s)["spec"]["updateStrategy"]
    return (strategy.get("rollingUpdate") or {}).get("partition")


def node_images(cluster: Cluster, ns: str, s: MemoryStore) -> dict[int, str]:
    """Each running Qdrant node's image, by ordinal."""
    sts = names.qdrant_statefulset_name(s)
    return {
        int(p["metadata"]["name"].rsplit("-", 1)[1]): p["spec"]["containers"][0]["image"]
        for p in cluster.client.list("Pod", ns, "app.kubernetes.io/name=qdrant")
        if p["metadata"]["name"].startswith(f"{sts}-")
        and not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") == "Running"
    }


def run_on_fake_cluster(cluster: Cluster, ns: str, job: str, qdrant: FakeCluster, files: Path) -> str:
    """The Job's own command against the fake cluster, its result reported as the kubelet would."""
    urls = ",".join(p.url for p in qdrant.peers)
    code, message = run_job_command(
        cluster.client,
        cluster.jobs.pod(ns, job),
        files,
        overrides={env.QDRANT_URL: qdrant.peers[0].url, env.QDRANT_PEERS: urls},
    )
    assert code == 0, message
    cluster.jobs.finish(ns, job, message)
    return message


def test_a_new_qdrant_image_is_backed_up_then_rolled_node_by_node(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("qdrant-upgrade")
    spec = {
        "vectorStore": {"replicas": 3, "collection": {"replicationFactor": 2}},
        "backup": {"destination": {"pvc": {"size": "1Gi"}}},
    }
    s = create_store(cluster, store(ns, "demo", **spec))
    wait_phase(cluster, ns, "demo", "Ready")
    assert set(node_images(cluster, ns, s).values()) == {OLD}
    qdrant = FakeCluster(3, api_key=qdrant_key(cluster, ns, s)).start()
    try:
        qdrant.create_collection("memories", POINTS, shard_number=3, replication_factor=2)

        cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"image": NEW}}})

        # The backup first: the template has the new image, no node restarts.
        backup = names.upgrade_backup_name(s, NEW)
        job = names.backup_job_name(backup)
        wait_for(lambda: cluster.client.get("Job", ns, job), "the pre-upgrade backup's Job")
        assert partition(cluster, ns, s) == 3
        assert statefulset(cluster, ns, s)["spec"]["template"]["spec"]["containers"][0]["image"] == NEW
        assert set(node_images(cluster, ns, s).values()) == {OLD}
        run_on_fake_cluster(cluster, ns, job, qdrant, tmp_path / "backup")
        wait_for(lambda: backup_phase(cluster, ns, backup) == "Completed", "the backup Completed")

        # Then one node at a time, the highest first, each after the check found every shard active.
        for ordinal in (2, 1):
            wait_for(lambda o=ordinal: partition(cluster, ns, s) == o, f"partition {ordinal}")
            wait_for(
                lambda o=ordinal: (
                    node_images(cluster, ns, s).get(o) == NEW and len(node_images(cluster, ns, s)) == 3
                ),
                f"node {ordinal} on the new image",
            )
            assert {o for o, image in node_images(cluster, ns, s).items() if image == OLD} == set(
                range(ordinal)
            )
            check = names.upgrade_check_job_name(s, NEW, ordinal)
            wait_for(lambda c=check: cluster.client.get("Job", ns, c), f"the check after node {ordinal}")
            assert partition(cluster, ns, s) == ordinal  # the next node waits for the check
            for peer in qdrant.peers[ordinal:]:
                peer.version = "1.17.0"
            message = run_on_fake_cluster(cluster, ns, check, qdrant, tmp_path / f"check-{ordinal}")
            assert '"phase":"Completed"' in message

        wait_for(
            lambda: (
                set(node_images(cluster, ns, s).values()) == {NEW} and len(node_images(cluster, ns, s)) == 3
            ),
            "every node on the new image",
        )
        done = wait_for(
            lambda: (
                (b := cluster.client.get("MemoryStore", ns, "demo"))
                and condition(b, "VectorStoreUpgraded").get("reason") == "Current"
                and b
            ),
            "the upgrade done",
        )
        assert condition(done, "VectorStoreUpgraded")["message"] == f"every Qdrant node runs {NEW}"
        wait_for(lambda: partition(cluster, ns, s) is None, "the partition gone")
        checks = [names.upgrade_check_job_name(s, NEW, o) for o in (1, 2)]
        wait_for(
            lambda: all(cluster.client.get("Job", ns, c) is None for c in checks), "the check Jobs deleted"
        )

        def reasons() -> set[str]:
            return {
                e["reason"]
                for e in cluster.client.list("Event", ns)
                if e.get("involvedObject", {}).get("name") == "demo" and e.get("type") == "Normal"
            }

        # Events are posted after the status is written: the last one may come after the condition.
        wait_for(
            lambda: {"BackingUp", "Rolling", "WaitingForShards", "Current"} <= reasons(),
            "the upgrade's Events",
        )
        wait_phase(cluster, ns, "demo", "Ready")

        # Going back a minor version is refused, and nothing changes.
        cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"image": OLD}}})
        failed = wait_phase(cluster, ns, "demo", "Failed")
        assert "from 1.17.0 to 1.16.3" in condition(failed, "Ready")["message"]
        # Events are posted after the status is written.
        wait_for(
            lambda: warning_events(cluster, ns, "MemoryStore", "demo", "QdrantDowngradeRefused"), "a Warning"
        )
        assert statefulset(cluster, ns, s)["spec"]["template"]["spec"]["containers"][0]["image"] == NEW
        assert set(node_images(cluster, ns, s).values()) == {NEW}
    finally:
        qdrant.stop()
