"""Job summaries turned into status."""

from __future__ import annotations

import json

from memory_operator.api.backup import CollectionSnapshot, MemoryBackupStatus
from memory_operator.api.jobs import ExpirationSummary, RuleSummary
from memory_operator.backup.summary import fit
from memory_operator.controller import results


def pod(message: str, finished: str = "2025-01-01T00:00:00Z") -> dict:
    return {
        "status": {
            "containerStatuses": [{"state": {"terminated": {"message": message, "finishedAt": finished}}}]
        }
    }


def test_job_finished() -> None:
    assert results.job_finished({"status": {}}) is None
    assert results.job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) is True
    assert results.job_finished({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) is False


def test_newest_termination_message_wins_and_garbage_becomes_an_error() -> None:
    old = pod(json.dumps({"deleted": 1}), "2025-01-01T00:00:00Z")
    new = pod(json.dumps({"deleted": 2}), "2025-01-02T00:00:00Z")
    assert results.termination_message([old, new]) == {"deleted": 2}
    assert results.termination_message([pod("boom")]) == {"error": "boom"}
    assert results.termination_message([{"status": {}}]) is None


def test_expiration_run_from_summary() -> None:
    summary = {
        "rules": [{"name": "old", "matched": 3, "deleted": 3}],
        "matched": 3,
        "deleted": 3,
        "dryRun": False,
        "durationSeconds": 1.5,
    }
    run = results.expiration_run("demo", summary, True, "T")
    assert run == {
        "store": "demo",
        "time": "T",
        "succeeded": True,
        "dryRun": False,
        "matched": 3,
        "deleted": 3,
        "rules": [{"name": "old", "matched": 3, "deleted": 3}],
        "durationSeconds": 1.5,
    }


def test_expiration_run_from_the_expire_jobs_termination_message() -> None:
    summary = ExpirationSummary(store="other", dry_run=True, duration_seconds=2.0)
    summary.add_rule(RuleSummary(name="old", matched=4, deleted=0, ids=["a", "b"]))
    run = results.expiration_run("demo", json.loads(summary.termination_message()), True, "T")
    assert run == {
        "store": "demo",
        "time": "T",
        "succeeded": True,
        "dryRun": True,
        "matched": 4,
        "deleted": 0,
        "durationSeconds": 2.0,
        "rules": [{"name": "old", "matched": 4, "deleted": 0}],
    }
    failed = ExpirationSummary(store="demo", error="Qdrant is unreachable")
    run = results.expiration_run("demo", json.loads(failed.termination_message()), False, "T")
    assert run["succeeded"] is False and run["error"] == "Qdrant is unreachable"


def test_failed_run_without_summary_says_so() -> None:
    run = results.expiration_run("demo", None, False, "T")
    assert run["succeeded"] is False and "without a summary" in run["error"]


def test_upsert_run_replaces_per_store() -> None:
    runs = results.upsert_run([{"store": "a", "deleted": 1}, {"store": "b"}], {"store": "a", "deleted": 5})
    assert runs == [{"store": "a", "deleted": 5}, {"store": "b"}]


def test_backup_result_from_the_backup_jobs_summary() -> None:
    summary = MemoryBackupStatus(
        phase="Completed",
        start_time="T0",
        stop_time="T1",
        size_bytes=10,
        location="pvc://c/b/",
        snapshots=[CollectionSnapshot(collection="memories", name="s1", size_bytes=10, checksum="ab")],
    ).wire()
    ok = results.backup_result(json.loads(fit(summary)), True, "T2", "T-job")
    assert ok == {
        "phase": "Completed",
        "startTime": "T0",
        "stopTime": "T1",
        "location": "pvc://c/b/",
        "sizeBytes": 10,
        "snapshots": [{"collection": "memories", "name": "s1", "sizeBytes": 10, "checksum": "ab"}],
    }


def test_backup_result_failure_and_missing_times() -> None:
    failed = results.backup_result({"phase": "Failed", "error": "no space"}, False, "T2", "T1")
    assert failed["phase"] == "Failed" and failed["error"] == "no space"
    assert (failed["startTime"], failed["stopTime"]) == ("T1", "T2")
    # A Job that failed is a failed backup whatever its summary says.
    lying = results.backup_result({"phase": "Completed"}, False, "T2", None)
    assert lying["phase"] == "Failed" and "without a summary" in lying["error"]
    garbage = results.backup_result({"snapshots": "nope"}, True, "T2", None)
    assert garbage["phase"] == "Failed" and "unreadable" in garbage["error"]
