"""`memory-operator restore` against fake Qdrant nodes and clusters: Qdrant's rules, checks and clean-up."""

from __future__ import annotations

import hashlib
import io
import json
import resource
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import API_KEY, BUCKET, COLLECTION, ENTITIES, MEMORIES, STORE
from backup.fake_qdrant import VERSION, FakeCluster, FakeQdrant, running_cluster, shard_of
from memory_operator import env
from memory_operator.api.restore import RestoreSummary
from memory_operator.collection_names import apps_collection

pytestmark = pytest.mark.slow

ENTITIES_COLLECTION = COLLECTION + "_entities"


def wipe(node: FakeQdrant) -> None:
    node.drop_collection(COLLECTION)
    node.drop_collection(ENTITIES_COLLECTION)


def summary_of(result: Any) -> RestoreSummary:
    return RestoreSummary.model_validate_json(result.termination_message)


def manifest_path(backups: Path, backup: str = "b1") -> Path:
    return backups / STORE / backup / "manifest.json"


def test_round_trip_through_a_directory(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)

    result = role("restore", "--backup", "b1")

    assert result.code == 0, result.summary
    assert qdrant.points(COLLECTION) == MEMORIES
    assert qdrant.points(ENTITIES_COLLECTION) == ENTITIES
    summary = summary_of(result)
    assert summary.phase == "Completed" and summary.error is None and summary.reason is None
    assert [r.collection for r in summary.restored] == [COLLECTION, ENTITIES_COLLECTION]
    assert summary.location == f"{dir_env.resolve().as_uri()}/{STORE}/b1/"
    assert summary.backup_qdrant_version == summary.store_qdrant_version == VERSION
    assert [(v.collection, v.points, v.expected_points, v.shards) for v in summary.verified] == [
        (COLLECTION, len(MEMORIES), len(MEMORIES), 1),
        (ENTITIES_COLLECTION, len(ENTITIES), len(ENTITIES), 1),
    ]
    # Qdrant's rules: the snapshot's data wins, the manifest's checksum goes along, the upload is
    # named for this backup, and nothing is left in the node's snapshots folder.
    recoveries = qdrant.cluster.recoveries
    assert [r["priority"] for r in recoveries] == ["snapshot", "snapshot"]
    manifest = json.loads(manifest_path(dir_env).read_text())
    assert [r["checksum"] for r in recoveries] == [s["sha256"] for s in manifest["snapshots"]]
    assert all(r["filename"].startswith("restore-b1-node-0-") for r in recoveries)
    assert qdrant.stored_snapshots(COLLECTION) == [] and qdrant.stored_snapshots(ENTITIES_COLLECTION) == []


def test_round_trip_through_s3_into_a_new_store(
    s3_env: Any, qdrant: FakeQdrant, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    # A new store, with its own name and collection, on an empty Qdrant, bootstrapped from that backup.
    fresh = FakeQdrant(api_key=API_KEY).start()
    try:
        base_env.setenv(env.QDRANT_URL, fresh.url)
        base_env.setenv(env.COLLECTION, "agents_v2")

        result = role("restore", "--store", "agents-v2", "--backup", "b1")

        assert result.code == 0, result.summary
        assert fresh.points("agents_v2") == MEMORIES
        assert fresh.points("agents_v2_entities") == ENTITIES
        assert result.summary["location"] == f"s3://{BUCKET}/prod/memory/{STORE}/b1/"
    finally:
        fresh.stop()


def test_app_states_go_with_the_memories(
    dir_env: Path, qdrant: FakeQdrant, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    # Which apps of which users are paused: the server's `<collection>_apps`.
    apps = {"9b2e": {"vector": [0.0, 0.0, 0.0, 0.0], "payload": {"app": "travel", "is_active": False}}}
    qdrant.create_collection(apps_collection(COLLECTION), apps)
    assert role("backup", "--backup", "b1").code == 0
    manifest = json.loads(manifest_path(dir_env).read_text())
    assert [s["collection"] for s in manifest["snapshots"]] == [
        COLLECTION,
        ENTITIES_COLLECTION,
        apps_collection(COLLECTION),
    ]
    fresh = FakeQdrant(api_key=API_KEY).start()
    try:
        base_env.setenv(env.QDRANT_URL, fresh.url)
        base_env.setenv(env.COLLECTION, "agents_v2")

        result = role("restore", "--store", "agents-v2", "--backup", "b1", "--source-store", STORE)

        assert result.code == 0, result.summary
        assert fresh.points("agents_v2") == MEMORIES
        assert fresh.points(apps_collection("agents_v2")) == apps
    finally:
        fresh.stop()


def test_a_rerun_after_success_changes_nothing(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    assert role("restore", "--backup", "b1").code == 0
    recovered = len(qdrant.cluster.recoveries)
    # Written after the restore (the server has started): must survive a rerun of the restore job.
    qdrant.cluster.upsert(COLLECTION, {"new": {"vector": [1, 1, 1, 1], "payload": {}}})

    again = role("restore", "--backup", "b1")

    assert again.code == 0
    assert len(qdrant.cluster.recoveries) == recovered
    assert set(qdrant.points(COLLECTION) or {}) == {*MEMORIES, "new"}
    assert [(s["collection"], s["points"]) for s in again.summary["skipped"]] == [
        (COLLECTION, len(MEMORIES) + 1),
        (ENTITIES_COLLECTION, len(ENTITIES)),
    ]
    assert again.summary["restored"] == []


def test_force_recovers_a_collection_holding_points(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    qdrant.cluster.upsert(COLLECTION, {"new": {"vector": [1, 1, 1, 1], "payload": {}}})

    first = role("restore", "--backup", "b1", "--force")
    second = role("restore", "--backup", "b1", "--force")

    assert first.code == second.code == 0, (first.summary, second.summary)
    assert qdrant.points(COLLECTION) == MEMORIES  # the snapshot's data won
    # Each run names its uploads anew: a rerun never meets the file of another.
    names = [r["filename"] for r in qdrant.cluster.recoveries]
    assert len(names) == 4 and len(set(names)) == 4


def test_a_half_done_restore_completes_on_rerun(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    qdrant.drop_collection(ENTITIES_COLLECTION)  # the main collection is there, its entities are not
    result = role("restore", "--backup", "b1")
    assert result.code == 0
    assert [r["collection"] for r in result.summary["restored"]] == [ENTITIES_COLLECTION]
    assert qdrant.points(ENTITIES_COLLECTION) == ENTITIES


def test_a_damaged_file_is_refused_before_anything_is_recovered(
    dir_env: Path, qdrant: FakeQdrant, role: Any
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    manifest = json.loads(manifest_path(dir_env).read_text())
    damaged = dir_env / STORE / "b1" / manifest["snapshots"][0]["file"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    result = role("restore", "--backup", "b1")

    assert result.code == 1
    summary = summary_of(result)
    assert summary.phase == "Failed" and summary.reason == "ChecksumMismatch"
    assert "checksum mismatch" in (summary.error or "") and manifest["snapshots"][0]["file"] in (
        summary.error or ""
    )
    # Qdrant checked the manifest's checksum before recovering: no collection, no file kept.
    assert qdrant.cluster.recoveries[0]["checksum"] == manifest["snapshots"][0]["sha256"]
    assert qdrant.points(COLLECTION) is None
    assert qdrant.stored_snapshots(COLLECTION) == []
    assert not any((qdrant.snapshots_dir / "tmp" / "upload").iterdir())


def test_checksums_compare_without_case(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    path = manifest_path(dir_env)
    manifest = json.loads(path.read_text())
    for snapshot in manifest["snapshots"]:
        snapshot["sha256"] = snapshot["sha256"].upper()
    path.write_text(json.dumps(manifest))

    result = role("restore", "--backup", "b1")

    assert result.code == 0, result.summary
    assert qdrant.points(COLLECTION) == MEMORIES
    assert all(r["checksum"].isupper() for r in qdrant.cluster.recoveries)


def test_a_backup_of_another_qdrant_minor_version_is_refused(
    dir_env: Path, qdrant: FakeQdrant, role: Any
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    qdrant.version = "1.17.0"

    result = role("restore", "--backup", "b1")

    assert result.code == 1
    summary = summary_of(result)
    assert summary.reason == "QdrantVersionMismatch"
    assert (summary.backup_qdrant_version, summary.store_qdrant_version) == (VERSION, "1.17.0")
    assert VERSION in (summary.error or "") and "1.17.0" in (summary.error or "")
    assert qdrant.cluster.recoveries == [] and qdrant.points(COLLECTION) is None

    qdrant.version = "1.16.0"  # another patch release of the same minor: fine
    assert role("restore", "--backup", "b1").code == 0
    assert qdrant.points(COLLECTION) == MEMORIES


def test_an_existing_collection_of_another_shape_is_refused(
    dir_env: Path, qdrant: FakeQdrant, role: Any
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    qdrant.create_collection(COLLECTION, vector_size=8)  # empty, made with another embedder

    result = role("restore", "--backup", "b1")

    assert result.code == 1
    assert "not compatible with existing collection" in result.summary["error"]
    assert qdrant.points(COLLECTION) == {}
    assert qdrant.stored_snapshots(COLLECTION) == []  # the refused upload was deleted all the same


def test_a_count_other_than_the_backups_fails_the_check(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    path = manifest_path(dir_env)
    manifest = json.loads(path.read_text())
    manifest["points"][0].update(before=99, after=99)
    path.write_text(json.dumps(manifest))

    result = role("restore", "--backup", "b1")

    assert result.code == 1
    summary = summary_of(result)
    assert summary.reason == "VerificationFailed"
    assert f"{COLLECTION} holds {len(MEMORIES)} points" in (summary.error or "") and "99" in (
        summary.error or ""
    )


def test_a_backup_written_to_while_taken_checks_a_range(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    path = manifest_path(dir_env)
    manifest = json.loads(path.read_text())
    manifest["points"][0].update(before=len(MEMORIES) - 1, after=len(MEMORIES) + 1)
    path.write_text(json.dumps(manifest))

    result = role("restore", "--backup", "b1")

    assert result.code == 0, result.summary
    check = summary_of(result).verified[0]
    assert (check.expected_points, check.expected_points_max) == (len(MEMORIES) - 1, len(MEMORIES) + 1)


def restore_into_new_cluster(
    dir_env: Path, base_env: pytest.MonkeyPatch, role: Any, fresh: FakeCluster
) -> tuple[Any, FakeCluster]:
    base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in fresh.peers))
    return role("restore", "--backup", "b1", "--wait-timeout", "20"), fresh


def points_of(count: int) -> dict[str, dict[str, Any]]:
    return {f"p{i}": {"vector": [i, 1, 0, 0], "payload": {"user_id": "ada"}} for i in range(count)}


def test_distributed_restore_recovers_each_nodes_shards(
    dir_env: Path, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    points = points_of(30)
    with running_cluster(3, api_key=API_KEY) as source:
        source.create_collection(COLLECTION, points, shard_number=3)
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in source.peers))
        assert role("backup", "--backup", "b1").code == 0
    # A new cluster that places the shards differently from the one backed up.
    with running_cluster(3, api_key=API_KEY) as fresh:
        fresh.placement_offset = 1

        result, _ = restore_into_new_cluster(dir_env, base_env, role, fresh)

        assert result.code == 0, result.summary
        assert fresh.points(COLLECTION) == points
        # Node 0 first (its recovery created the collection), then each node onto itself.
        assert [r["peer"] for r in fresh.recoveries] == [0, 1, 2]
        assert all(r["priority"] == "snapshot" for r in fresh.recoveries)
        # Every shard active on the node whose snapshot held it; no empty replica left behind.
        states = fresh.replica_states(COLLECTION)
        assert states == {0: {0: "Active"}, 1: {1: "Active"}, 2: {2: "Active"}}
        assert all(p.stored_snapshots(COLLECTION) == [] for p in fresh.peers)
        assert summary_of(result).verified[0].points == 30

        base_env.setenv(env.QDRANT_PEERS, fresh.peers[0].url)
        mismatch = role("restore", "--backup", "b1")
        assert mismatch.code == 1 and "3 Qdrant node(s)" in mismatch.summary["error"]
        assert mismatch.summary["reason"] == "NodeCountMismatch"


def test_replicated_restore_recovers_each_shard_once_and_qdrant_resyncs_the_rest(
    dir_env: Path, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    points = points_of(30)
    with running_cluster(3, api_key=API_KEY) as source:
        # Shard i on nodes i and i+1: node 0 holds {0, 2}, node 1 {0, 1}, node 2 {1, 2}.
        source.create_collection(COLLECTION, points, shard_number=3, replication_factor=2)
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in source.peers))
        assert role("backup", "--backup", "b1").code == 0
    with running_cluster(3, api_key=API_KEY) as fresh:
        fresh.placement_offset = 2

        result, _ = restore_into_new_cluster(dir_env, base_env, role, fresh)

        assert result.code == 0, result.summary
        assert fresh.points(COLLECTION) == points
        # Node 2's snapshot held no shard that nodes 0 and 1 had not brought: not recovered.
        assert [r["peer"] for r in fresh.recoveries] == [0, 1]
        states = fresh.replica_states(COLLECTION)
        assert all(list(peers.values()) == ["Active", "Active"] for peers in states.values()), states
        for shard, peers in states.items():
            for ordinal in peers:
                held = set(fresh.peers[ordinal].local[COLLECTION][shard])
                assert held == {p for p in points if shard_of(p, 3) == shard}, (shard, ordinal)


def test_a_cluster_not_complete_in_time_fails_cleanly(
    dir_env: Path, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(2, api_key=API_KEY) as source:
        source.create_collection(COLLECTION, points_of(4), shard_number=2)
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in source.peers))
        assert role("backup", "--backup", "b1").code == 0
    with running_cluster(2, api_key=API_KEY) as fresh:
        fresh.peers[1].joined = False
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in fresh.peers))

        result = role("restore", "--backup", "b1", "--wait-timeout", "1")

        assert result.code == 1
        assert "not ready" in result.summary["error"] and fresh.peers[1].url in result.summary["error"]
        assert fresh.recoveries == []


def test_unknown_backup_fails_cleanly(dir_env: Path, role: Any) -> None:
    result = role("restore", "--backup", "never-taken")
    assert result.code == 1
    summary = summary_of(result)
    assert summary.reason == "BackupNotFound" and "no completed backup named never-taken" in (
        summary.error or ""
    )


# -- a snapshot larger than the old 1 GiB scratch space ---------------------------------------------

BIG_SIZE = 1024**3 + 64 * 1024**2  # 1.0625 GiB


def _member(tar_out: io.BufferedWriter, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar_out.write(info.tobuf(tarfile.GNU_FORMAT))
    tar_out.write(data + b"\0" * (-len(data) % tarfile.BLOCKSIZE))


def write_big_snapshot(path: Path, params: dict[str, Any], points: dict[str, Any]) -> None:
    """A snapshot with a 1.06 GiB segment file, written sparse (holes, no disk used for the zeros)."""
    with path.open("wb") as out:
        _member(out, "version.info", VERSION.encode())
        _member(out, "config.json", json.dumps({"params": params}).encode())
        _member(out, "payload_index.json", b'{"schema": {}}')
        _member(out, "shards/0/points.json", json.dumps(points).encode())
        info = tarfile.TarInfo("shards/0/segments/vectors.bin")
        info.size = BIG_SIZE
        out.write(info.tobuf(tarfile.GNU_FORMAT))
        out.seek(BIG_SIZE, io.SEEK_CUR)  # a hole: reads as zeros
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))  # end of archive


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_snapshot_larger_than_a_gibibyte_streams_into_qdrant(
    dir_env: Path, qdrant: FakeQdrant, role: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    # Replace the main collection's snapshot by one of more than 1 GiB, and fix the manifest.
    path = manifest_path(dir_env)
    manifest = json.loads(path.read_text())
    manifest["snapshots"] = manifest["snapshots"][:1]
    manifest["points"] = manifest["points"][:1]
    big = dir_env / STORE / "b1" / manifest["snapshots"][0]["file"]
    params = {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1, "replication_factor": 1}
    write_big_snapshot(big, params, MEMORIES)
    manifest["snapshots"][0].update(size=big.stat().st_size, sha256=sha256_of(big))
    path.write_text(json.dumps(manifest))
    assert big.stat().st_size > BIG_SIZE

    # The restore must not stage the file anywhere: no temporary file may even be created.
    def no_staging(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the restore staged a snapshot in a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, no_staging)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    result = role("restore", "--backup", "b1", "--wait-timeout", "60")

    peak_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak_before
    assert result.code == 0, result.summary
    assert qdrant.points(COLLECTION) == MEMORIES
    assert qdrant.cluster.recoveries[0]["size"] == big.stat().st_size  # all of it reached Qdrant
    # Streamed, not held: the process never grew by anything near the file's size.
    assert peak_growth < 256 * 1024**2, peak_growth
    assert qdrant.stored_snapshots(COLLECTION) == []
