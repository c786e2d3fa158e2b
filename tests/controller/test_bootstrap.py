"""Restore before serving: the pure decision from the store's status, its backup and its restore Job."""

from __future__ import annotations

from typing import Any

import pytest

from memory_operator import labels
from memory_operator.api.store import MemoryStore
from memory_operator.controller import bootstrap
from memory_operator.labels import RESTORE as RESTORE_LABEL
from memory_operator.render import Credentials, Directives, render_store


def make_store(from_backup: str | None = "nightly-1", replicas: int = 2) -> MemoryStore:
    spec: dict[str, Any] = {"server": {"replicas": replicas}}
    if from_backup:
        spec["bootstrap"] = {"fromBackup": {"name": from_backup}}
    return MemoryStore.model_validate({"metadata": {"name": "mem", "namespace": "agents"}, "spec": spec})


def backup(phase: str | None) -> dict[str, Any]:
    return {"metadata": {"name": "nightly-1"}, "status": {"phase": phase} if phase else {}}


def job(outcome: str | None) -> dict[str, Any]:
    conditions = [{"type": outcome, "status": "True"}] if outcome else []
    return {"metadata": {"name": "mem-restore"}, "status": {"conditions": conditions}}


def decide(
    store: MemoryStore | None = None,
    restored_from: str | None = None,
    backup_body: dict[str, Any] | None = None,
    job_body: dict[str, Any] | None = None,
    job_error: str | None = None,
    retry: str | None = None,
) -> bootstrap.Bootstrap:
    return bootstrap.decide(
        store or make_store(),
        restored_from=restored_from,
        backup=backup_body,
        job=job_body,
        job_error=job_error,
        generation=4,
        retry=retry,
    )


def test_store_without_bootstrap_serves_and_has_no_condition() -> None:
    decision = decide(make_store(None), backup_body=None)
    assert decision.held is None and not decision.run_job and decision.condition is None


def test_completed_backup_starts_the_restore_and_holds_the_server() -> None:
    decision = decide(backup_body=backup("Completed"))
    assert decision.run_job
    assert decision.held is not None and decision.held.phase == "Provisioning"
    assert decision.condition is not None
    assert (decision.condition.status, decision.condition.reason) == ("False", "RestoreRunning")
    assert decision.restored_from is None and not decision.warning


def test_running_job_keeps_the_server_held() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job(None))
    assert decision.run_job and decision.held is not None
    assert decision.held.reason == "RestoreRunning"


def test_succeeded_job_releases_the_server_and_is_remembered() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job("Complete"))
    assert decision.held is None and not decision.run_job
    assert decision.restored_from == "nightly-1"
    assert decision.condition is not None and decision.condition.status == "True"
    assert decision.just_restored


@pytest.mark.parametrize("backup_body", [None, backup("Completed")])
def test_once_restored_the_job_never_runs_again(backup_body: dict[str, Any] | None) -> None:
    # The finished Job was deleted (and even the backup may be gone): no second restore.
    decision = decide(restored_from="nightly-1", backup_body=backup_body, job_body=None)
    assert not decision.run_job and decision.held is None
    assert decision.restored_from == "nightly-1"


def test_failed_job_fails_the_store_with_the_jobs_error() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job("Failed"), job_error="snapshot corrupt")
    assert decision.held is not None and decision.held.phase == "Failed"
    assert not decision.run_job
    assert decision.warning
    assert decision.condition is not None and decision.condition.reason == "RestoreFailed"
    assert "snapshot corrupt" in decision.condition.message
    assert decision.restored_from is None


def test_failed_job_deleted_runs_again() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=None)
    assert decision.run_job


@pytest.mark.parametrize(
    ("backup_body", "phase", "reason", "warning"),
    [
        (None, "Failed", "BackupNotFound", True),
        (backup("Failed"), "Failed", "BackupNotCompleted", True),
        (backup("Running"), "Provisioning", "WaitingForBackup", False),
        (backup(None), "Provisioning", "WaitingForBackup", False),
    ],
)
def test_backup_not_completed_runs_no_job(
    backup_body: dict[str, Any] | None, phase: str, reason: str, warning: bool
) -> None:
    decision = decide(backup_body=backup_body)
    assert not decision.run_job
    assert decision.held is not None and (decision.held.phase, decision.held.reason) == (phase, reason)
    assert decision.warning is warning
    assert decision.condition is not None and "nightly-1" in decision.condition.message


def job_with_attempt(outcome: str | None, attempt: str | None) -> dict[str, Any]:
    body = job(outcome)
    body["metadata"]["namespace"] = "agents"
    if attempt:
        body["metadata"]["annotations"] = {labels.RESTORE_ATTEMPT: attempt}
    return body


def test_failed_job_says_how_to_retry() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job_with_attempt("Failed", None))
    assert decision.condition is not None and labels.RETRY_RESTORE in decision.condition.message
    assert decision.delete == []


def test_a_new_retry_value_deletes_the_failed_job_then_runs_a_new_one() -> None:
    failed = job_with_attempt("Failed", None)
    retrying = decide(backup_body=backup("Completed"), job_body=failed, retry="1")
    assert [(r.kind, r.name) for r in retrying.delete] == [("Job", "mem-restore")]
    assert not retrying.run_job and retrying.held is not None and retrying.held.reason == "RestoreRetrying"
    # Once the failed Job is gone, the new one runs, annotated with the value it answers.
    again = decide(backup_body=backup("Completed"), job_body=None, retry="1")
    assert again.run_job and again.attempt == "1"
    # A Job of that attempt that fails too is not retried until the value changes again.
    failed_again = decide(
        backup_body=backup("Completed"), job_body=job_with_attempt("Failed", "1"), retry="1"
    )
    assert (
        failed_again.delete == []
        and failed_again.held is not None
        and failed_again.held.reason == "RestoreFailed"
    )


def test_directives_hold_the_deployment_and_add_the_job() -> None:
    store = make_store()
    keys = Credentials("a", "b", "c")
    held = render_store(store, (), credentials=keys, directives=Directives(hold_server=True))
    assert not [m for m in held if m["kind"] == "Job"]
    assert next(m for m in held if m["kind"] == "Deployment")["spec"]["replicas"] == 0
    running = render_store(
        store,
        (),
        credentials=keys,
        directives=Directives(restore=True, restore_attempt="2", hold_server=True),
    )
    job_manifest = next(m for m in running if m["kind"] == "Job")
    assert job_manifest["metadata"]["labels"][RESTORE_LABEL] == "nightly-1"
    assert job_manifest["metadata"]["annotations"] == {labels.RESTORE_ATTEMPT: "2"}
    done = render_store(store, (), credentials=keys)
    assert next(m for m in done if m["kind"] == "Deployment")["spec"]["replicas"] == 2
    assert not [m for m in done if m["kind"] == "Job"]
