"""`memory-operator restore`: round trips through a directory and S3, idempotence, damaged files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import API_KEY, BUCKET, COLLECTION, ENTITIES, MEMORIES, STORE
from backup.fake_qdrant import FakeQdrant
from memory_operator import env

pytestmark = pytest.mark.slow

ENTITIES_COLLECTION = COLLECTION + "_entities"


def uploads(node: FakeQdrant) -> int:
    return sum(1 for method, path in node.requests if method == "POST" and path.endswith("/snapshots/upload"))


def wipe(node: FakeQdrant) -> None:
    node.drop_collection(COLLECTION)
    node.drop_collection(ENTITIES_COLLECTION)


def test_round_trip_through_a_directory(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)

    result = role("restore", "--backup", "b1")

    assert result.code == 0, result.summary
    assert qdrant.points(COLLECTION) == MEMORIES
    assert qdrant.points(ENTITIES_COLLECTION) == ENTITIES
    summary = json.loads(result.termination_message)
    assert summary["phase"] == "Completed" and "error" not in summary
    assert [r["collection"] for r in summary["restored"]] == [COLLECTION, ENTITIES_COLLECTION]
    assert summary["location"] == f"{dir_env.resolve().as_uri()}/{STORE}/b1/"


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


def test_a_rerun_after_success_changes_nothing(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    assert role("restore", "--backup", "b1").code == 0
    recovered = uploads(qdrant)
    # Written after the restore (the server has started): must survive a rerun of the restore job.
    qdrant.create_collection(COLLECTION, {**MEMORIES, "new": {"vector": [1, 1, 1, 1], "payload": {}}})

    again = role("restore", "--backup", "b1")

    assert again.code == 0
    assert uploads(qdrant) == recovered
    assert set(qdrant.points(COLLECTION) or {}) == {*MEMORIES, "new"}
    assert [s["collection"] for s in again.summary["skipped"]] == [COLLECTION, ENTITIES_COLLECTION]
    assert again.summary["restored"] == []


def test_a_half_done_restore_completes_on_rerun(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    qdrant.drop_collection(ENTITIES_COLLECTION)  # the main collection is there, its entities are not
    result = role("restore", "--backup", "b1")
    assert result.code == 0
    assert [r["collection"] for r in result.summary["restored"]] == [ENTITIES_COLLECTION]
    assert qdrant.points(ENTITIES_COLLECTION) == ENTITIES


def test_a_damaged_file_fails_before_qdrant_is_touched(dir_env: Path, qdrant: FakeQdrant, role: Any) -> None:
    assert role("backup", "--backup", "b1").code == 0
    wipe(qdrant)
    manifest = json.loads((dir_env / STORE / "b1" / "manifest.json").read_text())
    damaged = dir_env / STORE / "b1" / manifest["snapshots"][0]["file"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    result = role("restore", "--backup", "b1")

    assert result.code == 1
    summary = json.loads(result.termination_message)
    assert summary["phase"] == "Failed" and "checksum mismatch" in summary["error"]
    assert uploads(qdrant) == 0 and qdrant.points(COLLECTION) is None


def test_distributed_round_trip(dir_env: Path, base_env: pytest.MonkeyPatch, role: Any) -> None:
    peers = [FakeQdrant(api_key=API_KEY).start() for _ in range(2)]
    try:
        for index, peer in enumerate(peers):
            peer.create_collection(COLLECTION, {f"p{index}": {"vector": [index, 0, 0, 0], "payload": {}}})
        base_env.setenv(env.QDRANT_PEERS, ",".join(p.url for p in peers))
        assert role("backup", "--backup", "b1").code == 0
        for peer in peers:
            peer.drop_collection(COLLECTION)

        assert role("restore", "--backup", "b1").code == 0

        # Each node gets back its own shards' snapshot.
        assert [set(p.points(COLLECTION) or {}) for p in peers] == [{"p0"}, {"p1"}]
        base_env.setenv(env.QDRANT_PEERS, peers[0].url)
        mismatch = role("restore", "--backup", "b1")
        assert mismatch.code == 1 and "2 Qdrant node(s)" in mismatch.summary["error"]
    finally:
        for peer in peers:
            peer.stop()


def test_unknown_backup_fails_cleanly(dir_env: Path, role: Any) -> None:
    result = role("restore", "--backup", "never-taken")
    assert result.code == 1
    assert "no completed backup named never-taken" in json.loads(result.termination_message)["error"]
