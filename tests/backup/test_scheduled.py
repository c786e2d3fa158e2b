"""`memory-operator backup --store S` (the CronJob): creates the run's MemoryBackup once, on a real API."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import STORE
from e2e.harness import Client, start_emulator
from memory_operator import env

pytestmark = pytest.mark.slow


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The in-memory Kubernetes API with the CRDs, reached through KUBECONFIG as outside a cluster."""
    emulator, client = start_emulator()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(emulator.kubeconfig())
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv(env.STORE_NAMESPACE, "team-a")
    yield client
    emulator.stop()


def test_creates_the_runs_memory_backup_once(kube: Client, role: Any) -> None:
    first = role("backup", "--store", STORE, "--schedule", "*/5 * * * *")
    second = role("backup", "--store", STORE, "--schedule", "*/5 * * * *")

    assert first.code == 0 and second.code == 0
    assert first.summary["created"] is True and second.summary["created"] is False
    assert first.summary["backup"] == second.summary["backup"]
    backups = kube.list("MemoryBackup", "team-a")
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
