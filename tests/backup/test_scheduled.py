"""`memory-operator backup --store S` (the CronJob): creates the run's MemoryBackup once, on a real API."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import MEMORIES, STORE, Kube
from memory_operator import env

pytestmark = pytest.mark.slow


def test_creates_the_runs_memory_backup_once(kube: Kube, role: Any) -> None:
    first = role("backup", "--store", STORE, "--schedule", "*/5 * * * *")
    second = role("backup", "--store", STORE, "--schedule", "*/5 * * * *")

    assert first.code == 0 and second.code == 0
    assert first.summary["created"] is True and second.summary["created"] is False
    assert first.summary["backup"] == second.summary["backup"]
    backups = kube.list("MemoryBackup", kube.a)
    assert len(backups) == 1
    backup = backups[0]
    assert backup["metadata"]["name"] == first.summary["backup"]
    assert backup["spec"] == {"storeRef": {"name": STORE}}
    assert backup["metadata"]["labels"]["memory-operator.io/store"] == STORE
    # Not marked as scheduled: the operator runs the backup Job for it like for any new MemoryBackup.
    assert "memory-operator.io/scheduled" not in backup["metadata"]["labels"]
    stamp = datetime.datetime.strptime(backup["metadata"]["name"][len(STORE) + 1 :], "%Y%m%d%H%M")
    assert stamp.minute % 5 == 0
    assert abs(datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - stamp) < datetime.timedelta(
        minutes=6
    )
    assert json.loads(first.termination_message) == first.summary


def test_unreachable_api_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: Any) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv(env.STORE_NAMESPACE, "team-a")
    assert role("backup", "--store", STORE).code == 1


def test_restore_finds_the_backup_through_its_memory_backup(
    kube: Kube, s3_env: Any, s3_server: str, qdrant: Any, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    """A store without a destination of its own restores from the location in the MemoryBackup's status."""
    taken = role("backup", "--backup", "b1")
    assert taken.code == 0
    kube.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryBackup",
            "metadata": {"name": "b1", "namespace": kube.a},
            "spec": {"storeRef": {"name": STORE}},
        }
    )
    kube.patch("MemoryBackup", kube.a, "b1", {"status": taken.summary}, sub="status")
    for name in (env.BACKUP_S3_BUCKET, env.BACKUP_S3_PREFIX, env.BACKUP_S3_ENDPOINT, env.BACKUP_S3_REGION):
        base_env.delenv(name)
    # The AWS SDK's own settings, as a role or the pod's environment would give them.
    base_env.setenv("AWS_ENDPOINT_URL", s3_server)
    base_env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    base_env.setenv(env.COLLECTION, "fresh")

    result = role("restore", "--store", "fresh-store", "--backup", "b1")

    assert result.code == 0, result.summary
    assert result.summary["location"] == taken.summary["location"]
    assert set(qdrant.points("fresh") or {}) == set(MEMORIES)


def test_restore_from_a_claim_it_cannot_mount_says_so(
    kube: Kube, qdrant: Any, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    kube.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryBackup",
            "metadata": {"name": "b1", "namespace": kube.a},
            "spec": {"storeRef": {"name": STORE}},
        }
    )
    status = {"phase": "Completed", "location": f"pvc://agents-backups/{STORE}/b1/"}
    kube.patch("MemoryBackup", kube.a, "b1", {"status": status}, sub="status")

    result = role("restore", "--store", "fresh-store", "--backup", "b1")

    assert result.code == 1
    assert "claimName agents-backups" in result.summary["error"]
