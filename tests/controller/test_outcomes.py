"""MemoryBackups become backup Jobs; finished Jobs become status, once."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from memory_operator import env
from memory_operator.api.store import MemoryStore
from memory_operator.backup.main import memory_backup_body
from memory_operator.controller import outcomes
from memory_operator.controller.reconcile import Reconciler
from memory_operator.render import RenderSettings

from .fakes import FakeKube, drain, kopf_events

NS = "agents"
SETTINGS = RenderSettings(job_image="example.org/jobs:1")


def store_body(backup: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"backup": {"destination": {"pvc": {"size": "1Gi"}}}} if backup else {}
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "s", "namespace": NS, "uid": "store-uid", "generation": 1},
        "spec": spec,
    }


def backup_body(name: str = "s-202501010300") -> dict[str, Any]:
    body = memory_backup_body(NS, "s", name)
    body["metadata"].update(uid=f"{name}-uid", generation=1)
    return body


def test_backup_job_runs_the_named_backup_and_is_owned_by_it() -> None:
    job = outcomes.backup_job(MemoryStore.model_validate(store_body()), backup_body(), SETTINGS)
    assert job is not None
    assert job["metadata"]["name"] == "s-202501010300-backup"
    assert job["metadata"]["labels"]["memory-operator.io/backup"] == "s-202501010300"
    assert job["metadata"]["labels"]["memory-operator.io/store"] == "s"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "s-202501010300-uid"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["backup", "--store", "s", "--backup", "s-202501010300"]
    assert container["image"] == "example.org/jobs:1"
    assert env.BACKUP_SCHEDULE not in {v["name"] for v in container["env"]}
    assert outcomes.backup_job(MemoryStore.model_validate(store_body(False)), backup_body(), SETTINGS) is None


def test_backup_job_names_fit() -> None:
    long = "b" * 63
    name = outcomes.backup_job_name(long)
    assert len(name) <= 63 and name.endswith("-backup")
    assert name == outcomes.backup_job_name(long) != outcomes.backup_job_name("c" * 63)


async def test_every_backup_scheduled_or_not_gets_its_job_and_runs() -> None:
    kube = FakeKube(store_body(), backup_body())
    with kopf_events() as events:
        await outcomes.start_backup(kube, SETTINGS, backup_body())
    assert kube.find("jobs", NS, "s-202501010300-backup") is not None
    backup = kube.find("memorybackups", NS, "s-202501010300")
    assert backup is not None and backup["status"]["phase"] == "Running"
    assert drain(events) == [("Normal", "BackupStarted", "s-202501010300")]

    # Started already: a resumed operator does nothing again.
    writes = len(kube.writes)
    await outcomes.start_backup(kube, SETTINGS, backup)
    assert len(kube.writes) == writes


async def test_backup_of_a_missing_store_fails_with_a_warning() -> None:
    kube = FakeKube(backup_body())
    with kopf_events() as events:
        await outcomes.start_backup(kube, SETTINGS, backup_body())
    backup = kube.find("memorybackups", NS, "s-202501010300")
    assert backup is not None and backup["status"]["phase"] == "Failed"
    assert "does not exist" in backup["status"]["error"]
    assert drain(events) == [("Warning", "BackupFailed", "s-202501010300")]
    assert not [w for w in kube.writes if w[1] == "Job"]


async def test_one_backup_of_a_store_at_a_time() -> None:
    kube = FakeKube(store_body(), backup_body("first"), backup_body("second"))
    with kopf_events():
        await outcomes.start_backup(kube, SETTINGS, backup_body("first"))
        with pytest.raises(kopf.TemporaryError, match="first-backup"):
            await outcomes.start_backup(kube, SETTINGS, backup_body("second"))
        assert kube.find("jobs", NS, "second-backup") is None
        job = kube.find("jobs", NS, "first-backup")
        assert job is not None
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        await outcomes.start_backup(kube, SETTINGS, backup_body("second"))
    assert kube.find("jobs", NS, "second-backup") is not None


def finished_job(name: str, labels: dict[str, str], succeeded: bool) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "status": {
            "conditions": [
                {"type": "Complete" if succeeded else "Failed", "status": "True", "lastTransitionTime": "T9"}
            ]
        },
    }


def job_pod(job: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{job}-x", "namespace": NS, "labels": {"job-name": job}},
        "status": {"containerStatuses": [{"state": {"terminated": {"message": json.dumps(message)}}}]},
    }


async def test_expiration_result_is_recorded_once() -> None:
    labels = {"memory-operator.io/store": "s", "memory-operator.io/policy": "ttl"}
    policy = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryPolicy",
        "metadata": {"name": "ttl", "namespace": NS, "generation": 1},
        "spec": {},
    }
    job = finished_job("ttl-1", labels, True)
    summary = {"store": "s", "deleted": 2, "matched": 2, "rules": [{"name": "r", "matched": 2, "deleted": 2}]}
    kube = FakeKube(store_body(), policy, job, job_pod("ttl-1", summary))
    reconciler = Reconciler(kube, SETTINGS)  # type: ignore[arg-type]
    with kopf_events() as events:
        await outcomes.record_job(kube, reconciler, job)  # type: ignore[arg-type]
        recorded = kube.find("jobs", NS, "ttl-1")
        assert recorded is not None
        writes = len(kube.writes)
        await outcomes.record_job(kube, reconciler, recorded)  # type: ignore[arg-type]
        assert len(kube.writes) == writes
    runs = kube.find("memorypolicies", NS, "ttl")["status"]["lastRuns"]  # type: ignore[index]
    assert runs == [
        {
            "store": "s",
            "time": "T9",
            "succeeded": True,
            "dryRun": False,
            "matched": 2,
            "deleted": 2,
            "durationSeconds": 0.0,
            "rules": [{"name": "r", "matched": 2, "deleted": 2}],
        }
    ]
    store = kube.find("memorystores", NS, "s")
    assert store is not None
    assert store["status"]["lastExpiration"] == {
        "policy": "ttl",
        "time": "T9",
        "deleted": 2,
        "succeeded": True,
    }
    assert drain(events) == []


async def test_failed_backup_job_fails_the_backup_and_the_store_condition() -> None:
    labels = {"memory-operator.io/store": "s", "memory-operator.io/backup": "b"}
    job = finished_job("b-backup", labels, False)
    kube = FakeKube(store_body(), backup_body("b"), job, job_pod("b-backup", {"error": "disk full"}))
    reconciler = Reconciler(kube, SETTINGS)  # type: ignore[arg-type]
    with kopf_events() as events:
        await outcomes.record_job(kube, reconciler, job)  # type: ignore[arg-type]
    backup = kube.find("memorybackups", NS, "b")
    assert backup is not None and backup["status"]["phase"] == "Failed"
    assert backup["status"]["error"] == "disk full"
    store = kube.find("memorystores", NS, "s")
    assert store is not None and store["status"]["lastBackup"]["phase"] == "Failed"
    cond = {c["type"]: c for c in store["status"]["conditions"]}["LastBackupSucceeded"]
    assert cond["status"] == "False" and "disk full" in cond["message"]
    assert drain(events) == [("Warning", "BackupFailed", "b")]
