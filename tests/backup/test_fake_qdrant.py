"""The fake Qdrant keeps Qdrant's contract and behaves like Qdrant where the project depends on it."""

from __future__ import annotations

import datetime
import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client.http import models

from backup import qdrant_contract
from backup.fake_qdrant import FakeCluster, FakeQdrant, read_snapshot, running_cluster, shard_of
from memory_operator.qdrant_node import QdrantError, QdrantNode

pytestmark = pytest.mark.slow

KEY = "key"
POINTS = {f"p{i}": {"vector": [i, 1, 0, 0], "payload": {}} for i in range(12)}


def node(peer: FakeQdrant) -> QdrantNode:
    return QdrantNode(peer.url, KEY)


def upload(peer: FakeQdrant, collection: str, data: bytes, **settings: Any) -> None:
    stream = io.BytesIO(data)
    stream.name = settings.pop("name", "upload.snapshot")
    with node(peer) as client:
        client.recover_from_upload(collection, stream, **settings)


# -- the contract -------------------------------------------------------------------------------


def test_the_contract_is_read_from_qdrant_clients_generated_api() -> None:
    found = {o.name: o for o in qdrant_contract.operations()}
    upload_op = found["recover_from_uploaded_snapshot"]
    assert (upload_op.method, upload_op.path) == ("POST", "/collections/{collection_name}/snapshots/upload")
    assert upload_op.query == {"wait", "priority", "checksum"} and upload_op.multipart == {"snapshot"}
    assert found["create_collection"].body == "CreateCollection"
    assert found["update_collection_cluster"].body == "ClusterOperations"
    matched = qdrant_contract.match("POST", "/collections/m/snapshots/upload")
    assert matched is not None and matched[0].name == "recover_from_uploaded_snapshot"
    assert qdrant_contract.match("GET", "/collections/m/snapshot-typo/x/y") is None


def test_answers_are_checked_against_the_models_keys_included() -> None:
    operation = next(o for o in qdrant_contract.operations() if o.name == "collection_exists")
    good = {"result": {"exists": True}, "status": "ok", "time": 0.1}
    assert qdrant_contract.check_answer(operation, 200, good) == []
    assert qdrant_contract.check_answer(operation, 200, {"result": {"exist": True}, "status": "ok"})
    unknown = {"result": {"exists": True, "color": "red"}, "status": "ok", "time": 0.1}
    assert qdrant_contract.check_answer(operation, 200, unknown) == [
        "collection_exists answer has keys InlineResponse2009 does not: $.result.color"
    ]
    assert qdrant_contract.check_answer(operation, 404, {"status": {"error": "Not found"}, "time": 0.0}) == []


def test_requests_outside_the_contract_are_recorded() -> None:
    qdrant = FakeQdrant(api_key=KEY).start()
    try:
        qdrant.create_collection("m")
        headers = {"api-key": KEY}
        bad_body = httpx.put(
            f"{qdrant.url}/collections/n", json={"vectors": {"size": 4}, "shards": 2}, headers=headers
        )
        bad_query = httpx.get(f"{qdrant.url}/collections/m?verbose=true", headers=headers)
        unknown = httpx.get(f"{qdrant.url}/collections/m/everything", headers=headers)

        assert bad_body.status_code == 400 and bad_query.status_code == 200 and unknown.status_code == 404
        assert len(qdrant.violations) == 3, qdrant.violations
        assert "create_collection body is not a CreateCollection" in qdrant.violations[0]
        assert "query parameters Qdrant does not take: ['verbose']" in qdrant.violations[1]
        assert "is not an operation of Qdrant's API" in qdrant.violations[2]
    finally:
        qdrant.violations.clear()  # deliberate: the fixture checks the other tests
        qdrant.stop()


# -- cluster state ------------------------------------------------------------------------------


def test_each_peer_holds_its_own_shards_and_snapshots_only_those() -> None:
    with running_cluster(3, api_key=KEY) as cluster:
        cluster.create_collection("m", POINTS, shard_number=3)
        held = [set(peer.local_points("m")) for peer in cluster.peers]
        assert set().union(*held) == set(POINTS) and sum(map(len, held)) == len(POINTS)
        for peer, points in zip(cluster.peers, held, strict=True):
            _, in_snapshot = read_snapshot(peer.snapshot_bytes("m"))
            assert set(in_snapshot) == points
            info = node(peer).cluster_info("m")
            assert info is not None and [s.shard_id for s in info.local_shards] == [peer.ordinal]
            assert sorted(s.shard_id for s in info.remote_shards) == sorted({0, 1, 2} - {peer.ordinal})


def test_cluster_status_lists_the_joined_peers() -> None:
    with running_cluster(3, api_key=KEY) as cluster:
        cluster.peers[2].joined = False
        status = node(cluster.peers[0]).cluster_status()
        assert isinstance(status, models.ClusterStatusOneOf1)
        assert {int(p) for p in status.peers} == {cluster.peers[0].peer_id, cluster.peers[1].peer_id}
        assert not node(cluster.peers[2]).is_ready() and node(cluster.peers[1]).is_ready()
    single = FakeQdrant(api_key=KEY).start()
    try:
        assert isinstance(node(single).cluster_status(), models.ClusterStatusOneOf)
    finally:
        single.stop()


def test_default_shard_number_is_the_peers_present() -> None:
    with running_cluster(3, api_key=KEY) as cluster:
        cluster.peers[1].joined = cluster.peers[2].joined = False
        node(cluster.peers[0]).create_collection(
            "m", vectors_config=models.VectorParams(size=4, distance="Cosine")
        )
        assert cluster.replica_states("m") == {0: {0: "Active"}}  # everything on the one node present


# -- snapshots and recovery ---------------------------------------------------------------------


def test_a_snapshot_in_the_same_second_replaces_the_first(tmp_path: Path) -> None:
    qdrant = FakeQdrant(api_key=KEY).start()
    try:
        qdrant.cluster.clock = lambda: datetime.datetime(2025, 3, 10, 2, 0, 5, tzinfo=datetime.UTC)
        qdrant.create_collection("m", {"a": POINTS["p1"]})
        client = node(qdrant)
        first = client.create_snapshot("m")
        qdrant.cluster.upsert("m", {"b": POINTS["p2"]})
        second = client.create_snapshot("m")

        assert first.name == second.name and first.checksum != second.checksum
        (listed,) = client.list_snapshots("m")
        assert listed.checksum == second.checksum
    finally:
        qdrant.stop()


def test_the_first_recovery_creates_the_collection_on_every_peer_and_uploads_are_kept() -> None:
    with running_cluster(2, api_key=KEY) as source:
        source.create_collection("m", POINTS, shard_number=2)
        snapshots = [peer.snapshot_bytes("m") for peer in source.peers]
    with running_cluster(2, api_key=KEY) as cluster:
        upload(cluster.peers[0], "m", snapshots[0], name="mine.snapshot", checksum=None)

        assert sorted(cluster.replica_states("m")) == [0, 1]  # both shards, placed by this cluster
        assert cluster.peers[0].stored_snapshots("m") == ["mine.snapshot"]  # Qdrant keeps the upload
        info = node(cluster.peers[1]).collection_info("m")
        assert info is not None and info.config.params.shard_number == 2


def test_an_existing_collection_of_another_shape_refuses_the_snapshot() -> None:
    with running_cluster(1, api_key=KEY) as source:
        source.create_collection("m", POINTS, shard_number=2)
        snapshot = source.peers[0].snapshot_bytes("m")
    qdrant = FakeQdrant(api_key=KEY).start()
    try:
        qdrant.create_collection("m", shard_number=1)
        with pytest.raises(QdrantError, match="shard number"):
            upload(qdrant, "m", snapshot, checksum=None)
        qdrant.drop_collection("m")
        qdrant.create_collection("m", shard_number=2, vector_size=8)
        with pytest.raises(QdrantError, match="Collection vectors"):
            upload(qdrant, "m", snapshot, checksum=None)
    finally:
        qdrant.stop()


@pytest.mark.parametrize(
    ("priority", "expected_points", "other_state"),
    [
        # The default: the existing replica is the truth and overwrites what the snapshot brought.
        (models.SnapshotPriority.REPLICA, set(), "Active"),
        # The snapshot is the truth: the other replica is killed, then resynchronised from it.
        (models.SnapshotPriority.SNAPSHOT, set(POINTS), "Dead"),
        # Both kept as they are.
        (models.SnapshotPriority.NO_SYNC, set(POINTS), "Active"),
    ],
)
def test_priority_decides_whose_data_wins(
    priority: models.SnapshotPriority, expected_points: set[str], other_state: str
) -> None:
    with running_cluster(1, api_key=KEY) as source:
        source.create_collection("m", POINTS, replication_factor=2)
        snapshot = source.peers[0].snapshot_bytes("m")
    with running_cluster(2, api_key=KEY) as cluster:
        cluster.transfer_ticks = 1_000_000  # look at the state right after the recovery
        cluster.create_collection("m", replication_factor=2)  # empty, on both peers

        upload(cluster.peers[0], "m", snapshot, checksum=None, priority=priority)

        states = cluster.replica_states("m")[0]
        assert states[1] == other_state
        with cluster.lock:
            for transfer in cluster.collections["m"].transfers:
                transfer.ticks = 1
        cluster.tick()
        assert set(cluster.points("m") or {}) == expected_points


def test_a_shard_without_data_in_the_snapshot_is_skipped_and_left_partial() -> None:
    with running_cluster(2, api_key=KEY) as source:
        source.create_collection("m", POINTS, shard_number=2)
        snapshot = source.peers[0].snapshot_bytes("m")  # holds shard 0 only
    with running_cluster(2, api_key=KEY) as cluster:
        cluster.placement_offset = 1  # the new collection puts shard 0 on node 1, shard 1 on node 0

        upload(cluster.peers[0], "m", snapshot, checksum=None)

        # Shard 0 came with the snapshot: installed on node 0, node 1's empty replica dropped. Shard 1
        # had no data in it: node 0's replica went Partial and stays so.
        assert cluster.replica_states("m") == {0: {0: "Active"}, 1: {0: "Partial"}}
        assert set(cluster.points("m") or {}) == {p for p in POINTS if shard_of(p, 2) == 0}


def test_checksums_are_64_hex_digits_compared_without_case() -> None:
    qdrant = FakeQdrant(api_key=KEY).start()
    try:
        qdrant.create_collection("m", POINTS)
        data = qdrant.snapshot_bytes("m")
        digest = hashlib.sha256(data).hexdigest()
        qdrant.drop_collection("m")
        with pytest.raises(QdrantError, match="HTTP 422"):
            upload(qdrant, "m", data, checksum=digest[:63])
        with pytest.raises(QdrantError, match="HTTP 400: Checksum mismatch"):
            upload(qdrant, "m", data, checksum="0" * 64)
        assert qdrant.points("m") is None and qdrant.stored_snapshots("m") == []
        upload(qdrant, "m", data, checksum=digest.upper())
        assert qdrant.points("m") == POINTS
    finally:
        qdrant.stop()


def test_replicating_a_shard_copies_it_through_a_transfer() -> None:
    with running_cluster(2, api_key=KEY) as cluster:
        cluster.create_collection("m", POINTS)
        client = node(cluster.peers[0])
        client.replicate_shard("m", 0, cluster.peers[0].peer_id, cluster.peers[1].peer_id)
        info = client.cluster_info("m")
        assert info is not None and [(t.shard_id, t.to) for t in info.shard_transfers] == [
            (0, cluster.peers[1].peer_id)
        ]
        for _ in range(3):
            client.cluster_info("m")
        assert cluster.replica_states("m") == {0: {0: "Active", 1: "Active"}}
        assert cluster.peers[1].local_points("m") == POINTS
        with pytest.raises(QdrantError, match="already present"):
            client.replicate_shard("m", 0, cluster.peers[0].peer_id, cluster.peers[1].peer_id)


def test_a_standalone_node_is_a_cluster_of_one(tmp_path: Path) -> None:
    cluster = FakeCluster(1, api_key=KEY, root=tmp_path).start()
    try:
        cluster.create_collection("m", POINTS)
        assert node(cluster.peers[0]).count("m") == len(POINTS)
        assert (tmp_path / "node-0").exists() is False  # nothing written before a snapshot
        node(cluster.peers[0]).create_snapshot("m")
        assert len(list((tmp_path / "node-0" / "snapshots" / "m").glob("*.snapshot"))) == 1
    finally:
        cluster.stop()
