"""Job summaries turned into status."""

from __future__ import annotations

import json

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


def test_failed_run_without_summary_says_so() -> None:
    run = results.expiration_run("demo", None, False, "T")
    assert run["succeeded"] is False and "without a summary" in run["error"]


def test_upsert_run_replaces_per_store() -> None:
    runs = results.upsert_run([{"store": "a", "deleted": 1}, {"store": "b"}], {"store": "a", "deleted": 5})
    assert runs == [{"store": "a", "deleted": 5}, {"store": "b"}]


def test_backup_result() -> None:
    ok = results.backup_result({"location": "pvc://c/b/", "sizeBytes": 10}, True, "T2", "T1")
    assert ok == {
        "phase": "Completed",
        "stopTime": "T2",
        "startTime": "T1",
        "location": "pvc://c/b/",
        "sizeBytes": 10,
    }
    failed = results.backup_result({"error": "no space"}, False, "T2", None)
    assert failed["phase"] == "Failed" and failed["error"] == "no space"
