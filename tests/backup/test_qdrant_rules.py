"""Pure parts of the Qdrant rules: versions, recovery order, shard states, replication plans, settings."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence

import pytest
from qdrant_client.http import models

from memory_operator.api.collection import CollectionOutcome, CollectionSetupSummary, ShardReplication
from memory_operator.api.restore import RestoredSnapshot, RestoreSummary
from memory_operator.backup.manifest import CollectionPoints, Manifest, SnapshotFile
from memory_operator.backup.restore import (
    VersionMismatch,
    check_versions,
    expected_points,
    snapshots_to_recover,
)
from memory_operator.collection.settings import CollectionSettings
from memory_operator.collection.setup import IncompatibleCollection, compare, creation, replication_requests
from memory_operator.qdrant_node import Shards, minor_version

NOW = datetime.datetime(2025, 3, 10, 2, 0, tzinfo=datetime.UTC)


def snapshot(node: int, shards: list[int] | None, version: str | None = "1.16.3") -> SnapshotFile:
    return SnapshotFile(
        collection="memories",
        peer=f"http://q-{node}",
        node=node,
        name=f"s{node}",
        file=f"memories/node-{node}/s{node}",
        size=1,
        sha256="0" * 64,
        qdrant_version=version,
        shards=shards,
    )


def manifest(*snapshots: SnapshotFile, points: list[CollectionPoints] | None = None) -> Manifest:
    return Manifest(
        store="s",
        backup="b",
        collection="memories",
        start_time=NOW,
        time=NOW,
        snapshots=list(snapshots),
        points=points or [],
    )


def test_minor_versions() -> None:
    assert minor_version("1.16.3") == "1.16"
    assert minor_version("v1.16.0-unprivileged") == "1.16"
    assert minor_version("1.9") == "1.9"
    assert minor_version("dev") is None and minor_version(None) is None


def test_only_the_same_minor_version_restores() -> None:
    assert check_versions(manifest(snapshot(0, [0])), ["1.16.0"]) == ("1.16.3", "1.16.0")
    with pytest.raises(VersionMismatch) as refused:
        check_versions(manifest(snapshot(0, [0])), ["1.17.0"])
    assert (refused.value.backup_version, refused.value.store_version) == ("1.16.3", "1.17.0")
    assert refused.value.reason == "QdrantVersionMismatch"
    with pytest.raises(VersionMismatch):  # nodes of two minor versions (an upgrade half done)
        check_versions(manifest(snapshot(0, [0])), ["1.16.3", "1.17.0"])
    # A backup from before versions were recorded: no check.
    assert check_versions(manifest(snapshot(0, [0], version=None)), ["1.17.0"]) == (None, "1.17.0")


def test_node_zero_first_then_nodes_bringing_new_shards() -> None:
    # Replication factor 2 over 3 nodes: node 2 holds nothing nodes 0 and 1 do not.
    snapshots = [snapshot(2, [1, 2]), snapshot(1, [0, 1]), snapshot(0, [0, 2])]
    assert [s.node for s in snapshots_to_recover(snapshots)] == [0, 1]
    # One replica per shard: every node.
    assert [s.node for s in snapshots_to_recover([snapshot(i, [i]) for i in range(3)])] == [0, 1, 2]
    # Shards unknown (format 1): every node.
    assert [s.node for s in snapshots_to_recover([snapshot(i, None) for i in range(3)])] == [0, 1, 2]
    # Node 0 always goes first, even holding nothing: its recovery creates the collection.
    assert [s.node for s in snapshots_to_recover([snapshot(0, []), snapshot(1, [0])])] == [0, 1]


def test_expected_points() -> None:
    exact = manifest(points=[CollectionPoints(collection="memories", before=5, after=5)])
    assert expected_points(exact, "memories") == (5, None)
    moving = manifest(points=[CollectionPoints(collection="memories", before=7, after=5)])
    assert expected_points(moving, "memories") == (5, 7)
    assert expected_points(manifest(), "memories") == (None, None)


def cluster_info(
    local: list[tuple[int, str]],
    remote: list[tuple[int, int, str]],
    transfers: Sequence[tuple[int, int, int]] = (),
) -> Shards:
    return Shards.of(
        models.CollectionClusterInfo(
            peer_id=1,
            shard_count=3,
            local_shards=[models.LocalShardInfo(shard_id=s, points_count=0, state=st) for s, st in local],
            remote_shards=[models.RemoteShardInfo(shard_id=s, peer_id=p, state=st) for s, p, st in remote],
            shard_transfers=[
                models.ShardTransferInfo(shard_id=s, **{"from": f}, to=t, sync=True) for s, f, t in transfers
            ],
        )
    )


def test_shard_states() -> None:
    shards = cluster_info(
        [(0, "Active"), (1, "Partial")], [(1, 2, "Active"), (2, 3, "Dead"), (2, 2, "Partial")]
    )
    assert shards.replicas == {0: {1: "Active"}, 1: {1: "Partial", 2: "Active"}, 2: {3: "Dead", 2: "Partial"}}
    assert shards.without_active_replica() == [2]
    # Shard 1's partial replica has no transfer filling it; shard 2 has no active replica to copy from.
    assert shards.stranded_partials() == [(1, 1)]
    assert shards.active(1) == [2]
    assert shards.at_rest()  # no active replica to resynchronise shard 2's dead one from
    dead = cluster_info([(0, "Active")], [(0, 2, "Dead")])
    assert not dead.at_rest()
    moving = cluster_info([(0, "Active")], [(0, 2, "Partial")], transfers=[(0, 1, 2)])
    assert moving.stranded_partials() == [] and not moving.at_rest()


def test_replication_plan_fills_the_least_loaded_peers() -> None:
    shards = cluster_info([(0, "Active"), (1, "Active"), (2, "Active")], [(2, 2, "Active")])
    requests, stuck = replication_requests(shards, 2, [1, 2, 3])
    assert [(r.shard_id, r.from_peer, r.to_peer) for r in requests] == [(0, 1, 3), (1, 1, 2)]
    assert stuck == []
    # A transfer under way counts; a shard with no active replica cannot be copied.
    moving = cluster_info([(0, "Active")], [(0, 2, "Partial"), (1, 2, "Dead")], transfers=[(0, 1, 2)])
    requests, stuck = replication_requests(moving, 2, [1, 2, 3])
    assert requests == [] and stuck == [1]
    # Too few peers for the factor.
    requests, stuck = replication_requests(cluster_info([(0, "Active")], []), 3, [1, 2])
    assert [(r.shard_id, r.to_peer) for r in requests] == [(0, 2)] and stuck == [0]


SETTINGS = CollectionSettings(name="memories", vector_size=384, shard_number=2, replication_factor=2)


def params(**changes: object) -> models.CollectionParams:
    values: dict[str, object] = {
        "vectors": models.VectorParams(size=384, distance=models.Distance.COSINE, on_disk=False),
        "shard_number": 2,
        "replication_factor": 2,
        "sparse_vectors": {"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        **changes,
    }
    return models.CollectionParams.model_validate(values)


def test_a_collection_as_specified_has_nothing_to_change() -> None:
    outcome = compare(SETTINGS, params())
    assert outcome.updated == [] and outcome.not_updatable == []
    created = creation(SETTINGS)
    assert created["shard_number"] == 2 and created["replication_factor"] == 2


def test_what_qdrant_can_change_and_what_it_cannot() -> None:
    outcome = compare(
        SETTINGS,
        params(
            vectors=models.VectorParams(size=384, distance=models.Distance.COSINE, on_disk=True),
            replication_factor=1,
            shard_number=4,
            sparse_vectors=None,
        ),
    )
    assert [(d.setting, d.desired, d.actual) for d in outcome.updated] == [
        ("onDisk", "False", "True"),
        ("replicationFactor", "2", "1"),
    ]
    assert [(d.setting, d.desired, d.actual) for d in outcome.not_updatable] == [
        ("shardNumber", "2", "4"),
        ("sparseVectors", "bm25", "none"),
    ]


@pytest.mark.parametrize(
    "vectors",
    [
        models.VectorParams(size=768, distance=models.Distance.COSINE),
        models.VectorParams(size=384, distance=models.Distance.DOT),
        {"dense": models.VectorParams(size=384, distance=models.Distance.COSINE)},
    ],
)
def test_vectors_the_server_cannot_write_are_refused(vectors: object) -> None:
    with pytest.raises(IncompatibleCollection):
        compare(SETTINGS, params(vectors=vectors))


def test_summaries_fit_a_termination_message() -> None:
    restore = RestoreSummary(
        phase="Failed",
        error="x" * 10_000,
        restored=[RestoredSnapshot(collection="memories", node=i, snapshot="s" * 60) for i in range(200)],
    )
    text = restore.termination_message()
    assert len(text.encode()) < 4096
    assert RestoreSummary.model_validate(json.loads(text)).phase == "Failed"
    setup = CollectionSetupSummary(
        phase="Completed",
        collections=[
            CollectionOutcome(
                name="memories",
                replications=[
                    ShardReplication(shard_id=i, from_peer=10**15, to_peer=10**15 + 1) for i in range(256)
                ],
            )
        ],
    )
    text = setup.termination_message()
    assert len(text.encode()) < 4096
    assert CollectionSetupSummary.model_validate_json(text).collections[0].name == "memories"
