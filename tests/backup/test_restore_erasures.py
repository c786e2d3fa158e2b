"""A restore re-applies the erasures its file lists before the server starts: backup, erase, restore into a
new store, and the subject's memories are gone from it (and only theirs)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import API_KEY, COLLECTION, ENTITIES, MEMORIES
from backup.fake_qdrant import FakeQdrant
from memory_operator import env
from memory_operator.api.restore import RestoreSummary

pytestmark = pytest.mark.slow


def erasures_file(tmp_path: Path, *subjects: tuple[str, dict[str, str]]) -> Path:
    path = tmp_path / "erasures.json"
    entries = [{"name": name, "subject": subject} for name, subject in subjects]
    path.write_text(json.dumps({"erase": [], "reapply": entries}))
    return path


def restore_into_a_new_store(
    role: Any, base_env: pytest.MonkeyPatch, tmp_path: Path, *extra: str
) -> tuple[Any, FakeQdrant]:
    fresh = FakeQdrant(api_key=API_KEY).start()
    base_env.setenv(env.QDRANT_URL, fresh.url)
    return role("restore", "--store", "agents-v2", "--backup", "b1", *extra), fresh


def test_the_backup_holds_the_subject_and_the_restore_erases_it_again(
    dir_env: Path, qdrant: FakeQdrant, base_env: pytest.MonkeyPatch, role: Any, tmp_path: Path
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    # The erasure happens after the backup: the live store no longer has ada's memories, the backup does.
    file = erasures_file(
        tmp_path, ("erase-ticket-1", {"userId": "ada"}), ("erase-ticket-2", {"runId": "none"})
    )
    result, fresh = restore_into_a_new_store(role, base_env, tmp_path, "--erasures-file", str(file))
    try:
        assert result.code == 0, result.summary
        assert fresh.points(COLLECTION) == {
            k: v for k, v in MEMORIES.items() if v["payload"]["user_id"] != "ada"
        }
        assert fresh.points(COLLECTION + "_entities") == ENTITIES
    finally:
        fresh.stop()
    summary = RestoreSummary.model_validate_json(result.termination_message)
    assert (summary.phase, summary.erasures_reapplied, summary.erasures_deleted) == ("Completed", 2, 2)
    assert summary.erasures == ["erase-ticket-1", "erase-ticket-2"]
    # The restore itself is verified against the backup's counts, before the erasures.
    assert (summary.verified[0].collection, summary.verified[0].points) == (COLLECTION, len(MEMORIES))
    # The subject never shows; the checksums' hex digits may happen to spell it.
    assert not re.search(r"(?<![0-9a-f])ada(?![0-9a-f])", result.termination_message)


def test_the_operators_file_is_read_from_the_environment(
    dir_env: Path, qdrant: FakeQdrant, base_env: pytest.MonkeyPatch, role: Any, tmp_path: Path
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    base_env.setenv(env.ERASURES_FILE, str(erasures_file(tmp_path, ("erase-ticket-3", {"userId": "bob"}))))
    result, fresh = restore_into_a_new_store(role, base_env, tmp_path)
    try:
        assert result.code == 0, result.summary
        assert set(fresh.points(COLLECTION) or {}) == {"1f7a", "2b8c"}
    finally:
        fresh.stop()


def test_an_unreadable_erasures_file_keeps_the_server_stopped(
    dir_env: Path, qdrant: FakeQdrant, base_env: pytest.MonkeyPatch, role: Any, tmp_path: Path
) -> None:
    assert role("backup", "--backup", "b1").code == 0
    result, fresh = restore_into_a_new_store(
        role, base_env, tmp_path, "--erasures-file", str(tmp_path / "missing.json")
    )
    fresh.stop()
    summary = RestoreSummary.model_validate_json(result.termination_message)
    assert (result.code, summary.phase, summary.reason) == (1, "Failed", "InvalidSettings")
