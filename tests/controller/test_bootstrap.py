"""Restore before serving: the pure decision from the store's status, its backup and its restore Job."""

from __future__ import annotations

from typing import Any

import pytest

from memory_operator.api.store import MemoryStore
from memory_operator.controller import bootstrap, status
from memory_operator.render import Credentials, render_store
from memory_operator.render.meta import RESTORE_LABEL


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
) -> bootstrap.Bootstrap:
    return bootstrap.decide(
        store or make_store(),
        restored_from=restored_from,
        backup=backup_body,
        job=job_body,
        job_error=job_error,
        generation=4,
    )


def test_store_without_bootstrap_serves_and_has_no_condition() -> None:
    decision = decide(make_store(None), backup_body=None)
    assert decision.held is None and not decision.run_job and decision.condition is None


def test_completed_backup_starts_the_restore_and_holds_the_server() -> None:
    decision = decide(backup_body=backup("Completed"))
    assert decision.run_job
    assert decision.held is not None and decision.held.phase == "Provisioning"
    assert decision.condition is not None
    assert (decision.condition["status"], decision.condition["reason"]) == ("False", "RestoreRunning")
    assert decision.restored_from is None and not decision.warning


def test_running_job_keeps_the_server_held() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job(None))
    assert decision.run_job and decision.held is not None
    assert decision.held.reason == "RestoreRunning"


def test_succeeded_job_releases_the_server_and_is_remembered() -> None:
    decision = decide(backup_body=backup("Completed"), job_body=job("Complete"))
    assert decision.held is None and not decision.run_job
    assert decision.restored_from == "nightly-1"
    assert decision.condition is not None and decision.condition["status"] == "True"
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
    assert decision.condition is not None and decision.condition["reason"] == "RestoreFailed"
    assert "snapshot corrupt" in decision.condition["message"]
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
    assert decision.condition is not None and "nightly-1" in decision.condition["message"]


def rendered(store: MemoryStore) -> list[dict[str, Any]]:
    return render_store(store, (), credentials=Credentials("a", "b", "c"))


def test_shape_holds_the_deployment_and_drops_the_job_when_told() -> None:
    store = make_store()
    manifests = rendered(store)
    held = bootstrap.shape(manifests, decide(backup_body=None))
    assert not [m for m in held if bootstrap.is_restore_job(m)]
    assert next(m for m in held if m["kind"] == "Deployment")["spec"]["replicas"] == 0
    running = bootstrap.shape(manifests, decide(backup_body=backup("Completed")))
    job_manifest = next(m for m in running if bootstrap.is_restore_job(m))
    assert job_manifest["metadata"]["labels"][RESTORE_LABEL] == "nightly-1"
    done = bootstrap.shape(manifests, decide(restored_from="nightly-1"))
    assert next(m for m in done if m["kind"] == "Deployment")["spec"]["replicas"] == 2
    assert not [m for m in done if bootstrap.is_restore_job(m)]
    # The renderer's own output is left untouched.
    assert next(m for m in manifests if m["kind"] == "Deployment")["spec"]["replicas"] == 2


def test_held_server_makes_the_store_not_ready_even_with_every_workload_ready() -> None:
    ready = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1},
    }
    decision = decide(backup_body=backup("Completed"), job_body=job(None))
    assert decision.condition is not None
    result = status.observed_status(
        {},
        generation=4,
        statefulset=ready,
        deployment={"metadata": {"generation": 1}, "status": {"observedGeneration": 1}},
        qdrant_replicas=1,
        server_replicas=2,
        credentials_secret="mem-api-keys",
        endpoints={},
        expiration=None,
        now="T",
        held=decision.held,
        extra=[decision.condition],
    )
    conditions = {c["type"]: c for c in result["conditions"]}
    assert result["phase"] == "Provisioning"
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "RestoreRunning")
    assert conditions["ServerReady"]["status"] == "False"
    assert conditions["VectorStoreReady"]["status"] == "True"
    assert conditions["Restored"]["reason"] == "RestoreRunning"
