"""`memory-operator collection`: the store's collection made as specified, kept so, replicated."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest
from qdrant_client import QdrantClient

from backup.conftest import API_KEY, COLLECTION
from backup.fake_qdrant import FakeCluster, FakeQdrant, running_cluster
from memory_operator import env
from memory_operator.api.collection import CollectionSetupSummary

pytestmark = pytest.mark.slow

ENTITIES = COLLECTION + "_entities"
MEM0_FIELDS = ["actor_id", "agent_id", "run_id", "user_id"]


@pytest.fixture
def spec_env(base_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The collection Job's environment for a store whose embedder makes 384 dimensions."""
    base_env.setenv(env.COLLECTION_VECTOR_SIZE, "384")
    return base_env


@pytest.fixture
def empty() -> Any:
    node = FakeQdrant(api_key=API_KEY).start()
    yield node
    node.stop()


def summary_of(result: Any) -> CollectionSetupSummary:
    return CollectionSetupSummary.model_validate_json(result.termination_message)


def use(base_env: pytest.MonkeyPatch, cluster: FakeCluster) -> None:
    base_env.setenv(env.QDRANT_URL, cluster.peers[0].url)
    base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in cluster.peers))


def mem0_store(node: FakeQdrant, collection: str, dims: int, on_disk: bool = False) -> Any:
    """mem0's own Qdrant vector store on `node` (it creates the collection when missing)."""
    from mem0.vector_stores.qdrant import Qdrant

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
        client = QdrantClient(url=node.url, api_key=API_KEY, check_compatibility=False)
    return Qdrant(collection_name=collection, embedding_model_dims=dims, client=client, on_disk=on_disk)


def test_creates_both_collections_exactly_as_mem0_would(
    spec_env: pytest.MonkeyPatch, empty: FakeQdrant, role: Any
) -> None:
    spec_env.setenv(env.QDRANT_URL, empty.url)
    spec_env.setenv(env.COLLECTION_ON_DISK, "true")
    spec_env.setenv(env.COLLECTION_SHARD_NUMBER, "2")

    result = role("collection")

    assert result.code == 0, result.summary
    summary = summary_of(result)
    assert summary.phase == "Completed" and summary.peers == 1 and summary.reason is None
    assert [(c.name, c.created, sorted(c.payload_indexes_created)) for c in summary.collections] == [
        (COLLECTION, True, MEM0_FIELDS),
        (ENTITIES, True, MEM0_FIELDS),
    ]
    # What mem0 makes of an empty Qdrant, on another node: the same collection, but its shard number.
    reference = FakeQdrant(api_key=API_KEY).start()
    try:
        mem0_store(reference, COLLECTION, 384, on_disk=True)
        ours = empty.cluster.collections[COLLECTION]
        mem0s = reference.cluster.collections[COLLECTION]
        assert {**ours.params, "shard_number": 1} == mem0s.params
        assert ours.params["shard_number"] == 2
        assert ours.payload_schema == mem0s.payload_schema
    finally:
        reference.stop()
    # The memory server's mem0 then finds it and uses it as its own: no creation, hybrid search on.
    created = sum(
        1 for method, path in empty.requests if method == "PUT" and path == f"/collections/{COLLECTION}"
    )
    store = mem0_store(empty, COLLECTION, 384, on_disk=True)
    assert store._has_bm25_slot
    assert (
        created
        == 1
        == sum(
            1 for method, path in empty.requests if method == "PUT" and path == f"/collections/{COLLECTION}"
        )
    )


def test_a_second_run_changes_nothing(spec_env: pytest.MonkeyPatch, empty: FakeQdrant, role: Any) -> None:
    spec_env.setenv(env.QDRANT_URL, empty.url)
    assert role("collection").code == 0
    writes = [r for r in empty.requests if r[0] != "GET"]

    again = role("collection")

    assert again.code == 0
    assert [r for r in empty.requests if r[0] != "GET"] == writes
    assert all(
        not c.created and not c.updated and not c.payload_indexes_created
        for c in summary_of(again).collections
    )


def test_openmemory_stores_get_no_entities_collection(
    spec_env: pytest.MonkeyPatch, empty: FakeQdrant, role: Any
) -> None:
    spec_env.setenv(env.QDRANT_URL, empty.url)
    spec_env.setenv(env.COLLECTION_ENTITIES, "false")
    assert role("collection").code == 0
    assert sorted(empty.cluster.collections) == [COLLECTION]


def test_a_live_collection_is_brought_to_what_qdrant_can_change(
    spec_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        # Made by an older mem0 with Qdrant's defaults: 3 shards (the peers), 1 replica, no sparse vector.
        cluster.create_collection(
            COLLECTION,
            {f"p{i}": {"vector": [0.0] * 384, "payload": {}} for i in range(9)},
            shard_number=3,
            vector_size=384,
            payload_schema={"user_id": "keyword"},
        )
        use(spec_env, cluster)
        spec_env.setenv(env.COLLECTION_ENTITIES, "false")
        spec_env.setenv(env.COLLECTION_ON_DISK, "true")
        spec_env.setenv(env.COLLECTION_REPLICATION_FACTOR, "2")

        result = role("collection", "--wait-timeout", "20")

        assert result.code == 0, result.summary
        (outcome,) = summary_of(result).collections
        assert not outcome.created
        assert [(d.setting, d.actual, d.desired) for d in outcome.updated] == [
            ("onDisk", "False", "True"),
            ("replicationFactor", "1", "2"),
        ]
        assert [(d.setting, d.actual, d.desired) for d in outcome.not_updatable] == [
            ("shardNumber", "3", "1"),
            ("sparseVectors", "none", "bm25"),
        ]
        assert sorted(outcome.payload_indexes_created) == ["actor_id", "agent_id", "run_id"]
        params = cluster.collections[COLLECTION].params
        assert params["vectors"]["on_disk"] is True and params["replication_factor"] == 2
        # Every shard now has two active replicas, each holding the shard's points.
        states = cluster.replica_states(COLLECTION)
        assert all(sorted(peers.values()) == ["Active", "Active"] for peers in states.values()), states
        assert len(outcome.replications) == 3 and outcome.under_replicated_shards == []
        assert len(cluster.points(COLLECTION) or {}) == 9


def test_after_a_scale_up_shards_are_replicated_onto_the_new_peers(
    spec_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        # Created while one node was up: replication factor 2 could not be placed.
        cluster.peers[1].joined = cluster.peers[2].joined = False
        cluster.create_collection(
            COLLECTION,
            {"a": {"vector": [0.0] * 384, "payload": {}}},
            shard_number=2,
            replication_factor=2,
            vector_size=384,
        )
        assert cluster.replica_states(COLLECTION) == {0: {0: "Active"}, 1: {0: "Active"}}
        cluster.peers[1].joined = cluster.peers[2].joined = True
        use(spec_env, cluster)
        spec_env.setenv(env.COLLECTION_ENTITIES, "false")
        spec_env.setenv(env.COLLECTION_SHARD_NUMBER, "2")
        spec_env.setenv(env.COLLECTION_REPLICATION_FACTOR, "2")

        result = role("collection", "--wait-timeout", "20")

        assert result.code == 0, result.summary
        (outcome,) = summary_of(result).collections
        # One new replica per shard, spread over the new peers (the least loaded first).
        assert sorted(r.shard_id for r in outcome.replications) == [0, 1]
        assert {r.to_peer for r in outcome.replications} == {
            cluster.peers[1].peer_id,
            cluster.peers[2].peer_id,
        }
        states = cluster.replica_states(COLLECTION)
        assert all(
            peers.get(0) == "Active" and list(peers.values()) == ["Active"] * 2 for peers in states.values()
        )


def test_waits_until_every_peer_has_joined(spec_env: pytest.MonkeyPatch, role: Any) -> None:
    with running_cluster(3, api_key=API_KEY) as cluster:
        cluster.peers[2].joined = False
        use(spec_env, cluster)
        spec_env.setenv(env.COLLECTION_SHARD_NUMBER, "3")
        late = threading.Timer(1.5, lambda: setattr(cluster.peers[2], "joined", True))
        late.start()
        try:
            result = role("collection", "--wait-timeout", "20")
        finally:
            late.cancel()

        assert result.code == 0, result.summary
        assert summary_of(result).peers == 3
        # Shards on every peer, the late one included: not all on the peers up first.
        placed = {ordinal for peers in cluster.replica_states(COLLECTION).values() for ordinal in peers}
        assert placed == {0, 1, 2}


def test_a_peer_that_never_joins_fails_the_job(spec_env: pytest.MonkeyPatch, role: Any) -> None:
    with running_cluster(2, api_key=API_KEY) as cluster:
        cluster.peers[1].joined = False
        use(spec_env, cluster)

        result = role("collection", "--wait-timeout", "1")

        assert result.code == 1
        summary = summary_of(result)
        assert summary.reason == "ClusterNotReady" and cluster.peers[1].url in (summary.error or "")
        assert cluster.collections == {}


def test_vectors_the_server_cannot_use_fail_the_job(
    spec_env: pytest.MonkeyPatch, empty: FakeQdrant, role: Any
) -> None:
    empty.create_collection(COLLECTION, vector_size=1536)
    spec_env.setenv(env.QDRANT_URL, empty.url)

    result = role("collection")

    assert result.code == 1
    summary = summary_of(result)
    assert summary.reason == "IncompatibleCollection"
    assert "vectorSize 1536 where the spec says 384" in (summary.error or "")


def test_too_few_peers_for_the_replication_factor_fail_the_job(
    spec_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(2, api_key=API_KEY) as cluster:
        use(spec_env, cluster)
        spec_env.setenv(env.COLLECTION_ENTITIES, "false")
        spec_env.setenv(env.COLLECTION_REPLICATION_FACTOR, "3")

        result = role("collection", "--wait-timeout", "5")

        assert result.code == 1
        summary = summary_of(result)
        assert summary.reason == "ReplicationIncomplete"
        assert summary.collections[0].under_replicated_shards == [0]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        (env.COLLECTION_VECTOR_SIZE, "", "set MEMORY_COLLECTION_VECTOR_SIZE"),
        (env.COLLECTION_VECTOR_SIZE, "lots", "whole number"),
        (env.COLLECTION_DISTANCE, "Manhattan2", "must be one of"),
        (env.COLLECTION_ON_DISK, "maybe", "true or false"),
        (env.COLLECTION_REPLICATION_FACTOR, "0", "at least 1"),
    ],
)
def test_bad_settings_fail_before_qdrant_is_touched(
    spec_env: pytest.MonkeyPatch, empty: FakeQdrant, role: Any, name: str, value: str, words: str
) -> None:
    spec_env.setenv(env.QDRANT_URL, empty.url)
    spec_env.setenv(name, value)
    result = role("collection")
    assert result.code == 1
    summary = summary_of(result)
    assert summary.reason == "InvalidSettings" and words in (summary.error or "")
    assert empty.requests == []
