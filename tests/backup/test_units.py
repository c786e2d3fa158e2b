"""Pure parts: retention decisions, scheduled names, the termination message's size."""

from __future__ import annotations

import datetime
import json

import pytest

from memory_operator.api.backup import MemoryBackupStatus
from memory_operator.backup.restore import target_collection
from memory_operator.backup.retention import CompletedBackup, backups_to_prune, parse_duration
from memory_operator.backup.summary import TERMINATION_MESSAGE_LIMIT, fit
from memory_operator.controller.schedule import fire_time, scheduled_backup_name

NOW = datetime.datetime(2025, 3, 10, 2, 0, 30, tzinfo=datetime.UTC)


def daily(count: int) -> list[CompletedBackup]:
    """`count` backups one day apart, the newest (b0) taken now."""
    return [CompletedBackup(f"b{i}", NOW - datetime.timedelta(days=i)) for i in range(count)]


def test_prunes_beyond_count_oldest_first() -> None:
    assert backups_to_prune(daily(5), NOW, 3, None, keep="b0") == ["b4", "b3"]


def test_prunes_beyond_age() -> None:
    assert backups_to_prune(daily(5), NOW, None, datetime.timedelta(days=2), keep="b0") == ["b4", "b3"]


def test_keeps_what_satisfies_both_limits() -> None:
    assert backups_to_prune(daily(3), NOW, 7, datetime.timedelta(days=30), keep="b0") == []
    assert backups_to_prune(daily(6), NOW, 4, datetime.timedelta(days=2), keep="b0") == ["b5", "b4", "b3"]


def test_never_prunes_the_backup_just_taken() -> None:
    # The new backup's manifest time is older than everything (a skewed clock) and beyond max age.
    backups = [*daily(3), CompletedBackup("new", NOW - datetime.timedelta(days=90))]
    pruned = backups_to_prune(backups, NOW, 1, datetime.timedelta(days=30), keep="new")
    assert "new" not in pruned
    assert sorted(pruned) == ["b0", "b1", "b2"]


def test_duration_syntax() -> None:
    assert parse_duration("30d") == datetime.timedelta(days=30)
    assert parse_duration("12h") == datetime.timedelta(hours=12)
    assert parse_duration("2w") == datetime.timedelta(days=14)
    for bad in ("", "0d", "30", "1y", "-1d"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_scheduled_name_is_the_schedules_tick() -> None:
    assert scheduled_backup_name("agents", fire_time("0 2 * * *", NOW)) == "agents-202503100200"
    # A pod retried 40 minutes later names the same backup.
    later = NOW + datetime.timedelta(minutes=40)
    assert scheduled_backup_name("agents", fire_time("0 2 * * *", later)) == "agents-202503100200"
    # A tick exactly now counts.
    assert fire_time("0 2 * * *", NOW.replace(second=0)) == NOW.replace(second=0)
    # Without a schedule: the current minute, in UTC.
    paris = datetime.timezone(datetime.timedelta(hours=1))
    assert scheduled_backup_name("agents", NOW.astimezone(paris)) == "agents-202503100200"


def test_scheduled_name_of_a_long_store_fits_a_label() -> None:
    long_store = "a" * 60
    name = scheduled_backup_name(long_store, NOW)
    assert len(name) <= 63 and name.endswith("-202503100200")
    assert name == scheduled_backup_name(long_store, NOW)
    assert name != scheduled_backup_name("a" * 59 + "b", NOW)


def test_termination_message_is_trimmed_and_still_a_status() -> None:
    status = MemoryBackupStatus(
        phase="Completed",
        size_bytes=123,
        location="s3://bucket/prefix/agents/b/",
        snapshots=[
            {
                "collection": "memories",
                "name": f"memories-{i}-2025-03-10-02-00-00.snapshot",
                "checksum": "f" * 64,
            }
            for i in range(100)
        ],
    ).wire()
    text = fit(status)
    assert len(text.encode()) < TERMINATION_MESSAGE_LIMIT
    parsed = MemoryBackupStatus.model_validate(json.loads(text))
    assert 0 < len(parsed.snapshots) < 100 and parsed.location == status["location"]
    long_error = fit({"phase": "Failed", "error": "x" * 10000})
    assert len(long_error.encode()) < TERMINATION_MESSAGE_LIMIT


def test_restored_collections_follow_the_new_main_collection() -> None:
    assert target_collection("memories", "memories", "restored") == "restored"
    assert target_collection("memories_entities", "memories", "restored") == "restored_entities"
    assert target_collection("memories", "memories", "memories") == "memories"
