"""`memory-operator backup --backup B` against fake Qdrant nodes, to a directory and to S3 (moto)."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import BUCKET, COLLECTION, ENTITIES, MEMORIES, STORE, free_port
from backup.fake_qdrant import VERSION, FakeQdrant, read_snapshot, running_cluster
from memory_operator import env
from memory_operator.api.backup import MemoryBackupStatus
from memory_operator.backup.destination import DirectoryDestination
from memory_operator.backup.manifest import Manifest, SnapshotFile

pytestmark = pytest.mark.slow


def manifest_at(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def test_backup_to_a_directory(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    result = role("backup", "--backup", "nightly")

    assert result.code == 0, result.summary
    folder = dir_env / STORE / "nightly"
    manifest = manifest_at(folder)
    assert (
        manifest["store"] == STORE and manifest["backup"] == "nightly" and manifest["namespace"] == "team-a"
    )
    assert [s["collection"] for s in manifest["snapshots"]] == [COLLECTION, COLLECTION + "_entities"]
    for snapshot, points in zip(manifest["snapshots"], (MEMORIES, ENTITIES), strict=True):
        data = (folder / snapshot["file"]).read_bytes()
        assert snapshot["file"] == f"{snapshot['collection']}/node-0/{snapshot['name']}"
        assert snapshot["sha256"] == hashlib.sha256(data).hexdigest()
        assert snapshot["size"] == len(data)
        assert snapshot["peer"] == qdrant.url and snapshot["qdrantVersion"] == VERSION
        assert snapshot["shards"] == [0]
        assert read_snapshot(data)[1] == points  # the bytes Qdrant made, untouched
    # Snapshots are deleted from Qdrant once copied (they take the node's disk); other collections untouched.
    assert (
        qdrant.stored_snapshots(COLLECTION) == [] and qdrant.stored_snapshots(COLLECTION + "_entities") == []
    )
    assert not any("someone-elses" in path for _, path in qdrant.requests)
    # Exact counts around the snapshots, for the restore to check against.
    assert manifest["formatVersion"] == 2
    assert manifest["points"] == [
        {"collection": COLLECTION, "before": len(MEMORIES), "after": len(MEMORIES)},
        {"collection": COLLECTION + "_entities", "before": len(ENTITIES), "after": len(ENTITIES)},
    ]

    status = MemoryBackupStatus.model_validate(json.loads(result.termination_message))
    assert len(result.termination_message.encode()) < 4096
    assert status.phase == "Completed" and status.error is None
    assert status.location == f"{dir_env.resolve().as_uri()}/{STORE}/nightly/"
    assert status.size_bytes == sum(s["size"] for s in manifest["snapshots"])
    assert [(s.collection, s.checksum) for s in status.snapshots] == [
        (s["collection"], s["sha256"]) for s in manifest["snapshots"]
    ]
    assert status.start_time and status.stop_time and status.start_time <= status.stop_time
    assert result.summary == json.loads(result.termination_message)


def test_backup_without_an_entities_collection(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    qdrant.drop_collection(COLLECTION + "_entities")
    assert role("backup", "--backup", "b1").code == 0
    assert [s["collection"] for s in manifest_at(dir_env / STORE / "b1")["snapshots"]] == [COLLECTION]


def test_backup_to_s3(s3_env: Any, qdrant: FakeQdrant, role: Any) -> None:
    result = role("backup", "--backup", "nightly")

    assert result.code == 0, result.summary
    folder = f"prod/memory/{STORE}/nightly/"
    keys = sorted(o["Key"] for o in s3_env.list_objects_v2(Bucket=BUCKET)["Contents"])
    manifest = json.loads(s3_env.get_object(Bucket=BUCKET, Key=folder + "manifest.json")["Body"].read())
    assert keys == sorted([folder + "manifest.json"] + [folder + s["file"] for s in manifest["snapshots"]])
    for snapshot, points in zip(manifest["snapshots"], (MEMORIES, ENTITIES), strict=True):
        data = s3_env.get_object(Bucket=BUCKET, Key=folder + snapshot["file"])["Body"].read()
        assert hashlib.sha256(data).hexdigest() == snapshot["sha256"]
        assert read_snapshot(data)[1] == points
    status = MemoryBackupStatus.model_validate(json.loads(result.termination_message))
    assert status.phase == "Completed" and status.location == f"s3://{BUCKET}/{folder}"


def test_distributed_mode_snapshots_every_peer(
    dir_env: Path, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    with running_cluster(3, api_key="qdrant-test-key") as cluster:
        # Three shards, one on each peer: each peer's snapshot holds its own shard's points only.
        points = {f"p{i}": {"vector": [i, 0, 0, 0], "payload": {}} for i in range(12)}
        cluster.create_collection(COLLECTION, points, shard_number=3)
        peers = cluster.peers
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in peers))
        base_env.setenv(env.QDRANT_URL, "http://127.0.0.1:1")  # the Service: must not be used for snapshots

        result = role("backup", "--backup", "b1")

        assert result.code == 0, result.summary
        manifest = manifest_at(dir_env / STORE / "b1")
        assert [(s["node"], s["peer"]) for s in manifest["snapshots"]] == [
            (i, p.url) for i, p in enumerate(peers)
        ]
        held: set[str] = set()
        for peer, snapshot in zip(peers, manifest["snapshots"], strict=True):
            data = (dir_env / STORE / "b1" / snapshot["file"]).read_bytes()
            assert set(read_snapshot(data)[1]) == set(peer.local_points(COLLECTION))
            states = cluster.replica_states(COLLECTION)
            assert snapshot["shards"] == sorted(
                s for s, replicas in states.items() if peer.ordinal in replicas
            )
            held |= set(read_snapshot(data)[1])
        assert held == set(points)
        assert manifest["points"] == [{"collection": COLLECTION, "before": 12, "after": 12}]
        status = MemoryBackupStatus.model_validate(json.loads(result.termination_message))
        assert [s.peer for s in status.snapshots] == [p.url for p in peers]
        assert all(p.stored_snapshots(COLLECTION) == [] for p in peers)


def old_backup(
    destination: DirectoryDestination, name: str, age: datetime.timedelta, store: str = STORE
) -> None:
    """A completed backup of `store` taken `age` ago."""
    when = datetime.datetime.now(datetime.UTC) - age
    payload = b"old snapshot " + name.encode()
    destination.write_text(store, name, "memories/node-0/old.snapshot", payload.decode())
    destination.write_manifest(
        Manifest(
            store=store,
            backup=name,
            collection=COLLECTION,
            start_time=when,
            time=when,
            snapshots=[
                SnapshotFile(
                    collection=COLLECTION,
                    peer="http://old",
                    name="old.snapshot",
                    file="memories/node-0/old.snapshot",
                    size=len(payload),
                    sha256=hashlib.sha256(payload).hexdigest(),
                )
            ],
        )
    )


def test_retention_prunes_by_count(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    destination = DirectoryDestination(dir_env)
    for day in range(1, 5):
        old_backup(destination, f"day-{day}", datetime.timedelta(days=day))
    # An older backup still being written (no manifest) is never touched.
    destination.write_text(STORE, "in-progress", "memories/node-0/x.snapshot", "partial")
    # Backups of other stores in the same destination are theirs to prune.
    old_backup(destination, "ancient", datetime.timedelta(days=90), store="other-store")
    base_env.setenv(env.BACKUP_MAX_COUNT, "3")

    assert role("backup", "--backup", "today").code == 0

    assert destination.list_backups(STORE) == ["day-1", "day-2", "in-progress", "today"]
    assert destination.list_backups("other-store") == ["ancient"]


def test_retention_prunes_by_age(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    destination = DirectoryDestination(dir_env)
    for day in (1, 6, 8, 40):
        old_backup(destination, f"day-{day}", datetime.timedelta(days=day))
    destination.write_text(STORE, "stale-attempt", "memories/node-0/x.snapshot", "partial")
    base_env.setenv(env.BACKUP_MAX_AGE, "7d")
    base_env.setenv(env.BACKUP_MAX_COUNT, "10")

    assert role("backup", "--backup", "today").code == 0

    assert destination.list_backups(STORE) == ["day-1", "day-6", "stale-attempt", "today"]


def test_retention_prunes_in_s3(s3_env: Any, base_env: pytest.MonkeyPatch, role: Any) -> None:
    base_env.setenv(env.BACKUP_MAX_COUNT, "1")
    assert role("backup", "--backup", "first").code == 0
    assert role("backup", "--backup", "second").code == 0
    keys = {o["Key"] for o in s3_env.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys and all(k.startswith(f"prod/memory/{STORE}/second/") for k in keys)


def test_a_completed_backup_is_not_taken_again(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    first = role("backup", "--backup", "b1")
    snapshots_made = sum(1 for m, p in qdrant.requests if m == "POST" and p.endswith("/snapshots"))
    second = role("backup", "--backup", "b1")
    assert first.code == second.code == 0
    assert sum(1 for m, p in qdrant.requests if m == "POST" and p.endswith("/snapshots")) == snapshots_made
    assert second.summary["snapshots"] == first.summary["snapshots"]


def assert_failed_cleanly(result: Any, backups: Path | None, *words: str) -> str:
    assert result.code == 1
    status = MemoryBackupStatus.model_validate(json.loads(result.termination_message))
    assert status.phase == "Failed" and status.error
    for word in words:
        assert word in status.error, status.error
    assert "Traceback" not in status.error
    if backups is not None:
        assert not list(backups.rglob("manifest.json")), "no manifest for a failed backup"
        assert not [p for p in backups.rglob("*") if p.is_file()], "no leftover files"
    return status.error


def test_qdrant_down_fails_cleanly(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    base_env.setenv(env.QDRANT_URL, f"http://127.0.0.1:{free_port()}")
    assert_failed_cleanly(role("backup", "--backup", "b1"), dir_env, "unreachable")


def test_wrong_api_key_fails_cleanly(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    base_env.setenv(env.QDRANT_API_KEY, "not-the-key")
    error = assert_failed_cleanly(role("backup", "--backup", "b1"), dir_env, "401", "API key")
    assert "not-the-key" not in error


def test_missing_bucket_fails_cleanly(s3_env: Any, base_env: pytest.MonkeyPatch, role: Any) -> None:
    base_env.setenv(env.BACKUP_S3_BUCKET, "no-such-bucket")
    assert_failed_cleanly(role("backup", "--backup", "b1"), None, "no-such-bucket", "does not exist")


def test_damaged_download_fails_cleanly(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    qdrant.corrupt_downloads = True
    assert_failed_cleanly(role("backup", "--backup", "b1"), dir_env, "checksum mismatch")
    assert qdrant.stored_snapshots(COLLECTION) == []  # freed even so


def test_missing_collection_fails_cleanly(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    qdrant.drop_collection(COLLECTION)
    assert_failed_cleanly(role("backup", "--backup", "b1"), dir_env, COLLECTION, "does not exist")


def test_a_large_snapshot_streams_to_s3_in_parts(s3_env: Any, qdrant: FakeQdrant, role: Any) -> None:
    # 40 MB of payload: more than two multipart chunks, streamed from Qdrant without seeking.
    blob = hashlib.sha256(b"seed").hexdigest() * (40 * 1024 * 1024 // 64)
    qdrant.create_collection(COLLECTION, {"big": {"vector": [1, 0, 0, 0], "payload": {"blob": blob}}})
    qdrant.drop_collection(COLLECTION + "_entities")

    result = role("backup", "--backup", "big")

    assert result.code == 0, result.summary
    (snapshot,) = result.summary["snapshots"]
    key = f"prod/memory/{STORE}/big/{COLLECTION}/node-0/{snapshot['name']}"
    head = s3_env.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == snapshot["sizeBytes"] > 40 * 1024 * 1024
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    data = s3_env.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == snapshot["checksum"]


def test_a_named_claim_shows_in_the_location(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    base_env.setenv(env.BACKUP_CLAIM_NAME, "agents-backups")
    result = role("backup", "--backup", "b1")
    assert result.summary["location"] == f"pvc://agents-backups/{STORE}/b1/"


def test_a_snapshot_replaced_in_the_same_second_is_taken_again(
    dir_env: Path, qdrant: FakeQdrant, role: Any
) -> None:
    # Qdrant names snapshots by the second: another client's snapshot of the same collection in that
    # second replaces this backup's before it is copied.
    second = datetime.datetime(2025, 3, 10, 2, 0, 5, tzinfo=datetime.UTC)
    calls = iter(range(10**6))
    qdrant.cluster.clock = lambda: second if next(calls) < 2 else datetime.datetime.now(datetime.UTC)
    qdrant.drop_collection(COLLECTION + "_entities")
    theirs: dict[str, Any] = {}

    def another_client(collection: str, name: str) -> None:
        if not theirs:
            qdrant.cluster.upsert(collection, {"late": {"vector": [1, 1, 1, 1], "payload": {}}})
            theirs.update(qdrant.take_snapshot(collection))

    qdrant.after_snapshot = another_client

    result = role("backup", "--backup", "b1")

    assert result.code == 0, result.summary
    (snapshot,) = manifest_at(dir_env / STORE / "b1")["snapshots"]
    assert snapshot["name"] != theirs["name"]  # taken again, in a later second
    data = (dir_env / STORE / "b1" / snapshot["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == snapshot["sha256"]
    assert set(read_snapshot(data)[1]) == {*MEMORIES, "late"}
    # The other client's snapshot is left to it; nothing of the first attempt stays in the backup.
    assert qdrant.stored_snapshots(COLLECTION) == [theirs["name"], theirs["name"] + ".checksum"]
    files = sorted(p.name for p in (dir_env / STORE / "b1").rglob("*") if p.is_file())
    assert files == sorted(["manifest.json", snapshot["name"]])
