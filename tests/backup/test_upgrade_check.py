"""`memory-operator upgrade-check`: between two nodes of a rolling upgrade, the cluster is whole again."""

from __future__ import annotations

from typing import Any

import pytest

from backup.conftest import API_KEY, COLLECTION
from backup.fake_qdrant import DEAD, PARTIAL, FakeCluster, running_cluster
from memory_operator import env
from memory_operator.api.collection import UpgradeCheckSummary

pytestmark = pytest.mark.slow


def use(base_env: pytest.MonkeyPatch, cluster: FakeCluster) -> None:
    base_env.setenv(env.QDRANT_URL, cluster.peers[0].url)
    base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in cluster.peers))


def summary_of(result: Any) -> UpgradeCheckSummary:
    return UpgradeCheckSummary.model_validate_json(result.termination_message)


def replicated(cluster: FakeCluster) -> None:
    """Two shards with two replicas each over three peers, holding points."""
    cluster.create_collection(
        COLLECTION,
        {f"p{i}": {"vector": [0.0] * 4, "payload": {}} for i in range(6)},
        shard_number=2,
        replication_factor=2,
    )


def test_a_whole_cluster_passes_with_each_peers_version(base_env: pytest.MonkeyPatch, role: Any) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        replicated(cluster)
        cluster.peers[2].version = "1.17.0"
        use(base_env, cluster)

        result = role("upgrade-check", "--wait-timeout", "5")

        assert result.code == 0, result.summary
        summary = summary_of(result)
        assert summary.succeeded and summary.reason is None and summary.inactive == []
        assert summary.versions == ["1.16.3", "1.16.3", "1.17.0"]


def test_waits_while_qdrant_synchronises_a_restarted_peers_replicas(
    base_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        replicated(cluster)
        restarted = cluster.peers[2].peer_id
        # The restarted node's replicas come back dead; Qdrant copies them from an active one.
        found = cluster.collections[COLLECTION]
        dead = [shard for shard, peers in found.replicas.items() if restarted in peers]
        assert dead
        for shard in dead:
            found.replicas[shard][restarted] = DEAD
            cluster.peer(restarted).local[COLLECTION][shard] = {}
        cluster.transfer_ticks = 6
        use(base_env, cluster)

        result = role("upgrade-check", "--wait-timeout", "60")

        assert result.code == 0, result.summary
        states = cluster.replica_states(COLLECTION)
        assert all(set(peers.values()) == {"Active"} for peers in states.values()), states
        # Only once the copies were made: the restarted peer holds its shards' points again.
        for shard in dead:
            assert cluster.peer(restarted).local[COLLECTION][shard]


def test_fails_naming_the_replica_that_stays_inactive(base_env: pytest.MonkeyPatch, role: Any) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        replicated(cluster)
        # A partial replica with no active one to copy from never recovers.
        found = cluster.collections[COLLECTION]
        shard, peers = next(iter(found.replicas.items()))
        for peer in peers:
            found.replicas[shard][peer] = PARTIAL
        use(base_env, cluster)

        result = role("upgrade-check", "--wait-timeout", "2")

        assert result.code == 1
        summary = summary_of(result)
        assert summary.phase == "Failed" and summary.reason == "ShardsNotActive"
        assert f"{COLLECTION} shard {shard} on peer {next(iter(peers))}: Partial" in summary.inactive
        assert summary.error and "not active after 2s" in summary.error


def test_a_peer_that_never_joins_fails_as_cluster_not_ready(base_env: pytest.MonkeyPatch, role: Any) -> None:
    with running_cluster(2, api_key=API_KEY) as cluster:
        cluster.peers[1].joined = False
        use(base_env, cluster)

        result = role("upgrade-check", "--wait-timeout", "1")

        assert result.code == 1
        assert summary_of(result).reason == "ClusterNotReady"


def test_the_termination_message_fits_with_a_long_list() -> None:
    summary = UpgradeCheckSummary(
        reason="ShardsNotActive",
        error="x" * 5000,
        inactive=[f"memories shard {i} on peer 1: Dead" for i in range(500)],
    )
    message = summary.termination_message()
    assert len(message.encode()) < 4096
    parsed = UpgradeCheckSummary.model_validate_json(message)
    assert parsed.reason == "ShardsNotActive" and parsed.error
