"""Retention deletes the pruned backups' MemoryBackups too, through the Kubernetes API when it can."""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import STORE, Kube
from backup.test_backup import old_backup
from memory_operator import env
from memory_operator.api.backup import MemoryBackupStatus
from memory_operator.backup.destination import DirectoryDestination

pytestmark = pytest.mark.slow


def memory_backup(namespace: str, name: str, store: str = STORE) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryBackup",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storeRef": {"name": store}},
    }


def names(kube: Kube, namespace: str) -> set[str]:
    return {b["metadata"]["name"] for b in kube.list("MemoryBackup", namespace)}


def four_old_backups(backups: Path) -> None:
    destination = DirectoryDestination(backups)
    for day in range(1, 5):
        old_backup(destination, f"day-{day}", datetime.timedelta(days=day))


def test_pruning_deletes_the_pruned_backups_memory_backups(
    dir_env: Path, base_env: pytest.MonkeyPatch, kube: Kube, role: Any
) -> None:
    four_old_backups(dir_env)
    for name in ("day-1", "day-2", "day-3", "today"):
        kube.create(memory_backup(kube.a, name))
    # Same name as a pruned backup, but another store's: not this store's to prune.
    kube.create(memory_backup(kube.a, "day-4", store="other-store"))
    # Same store name and backup name in another namespace: another store altogether.
    kube.create(memory_backup(kube.b, "day-3"))
    base_env.setenv(env.BACKUP_MAX_COUNT, "2")

    result = role("backup", "--backup", "today")

    assert result.code == 0, result.summary
    assert DirectoryDestination(dir_env).list_backups(STORE) == ["day-1", "today"]
    assert names(kube, kube.a) == {"day-1", "day-4", "today"}
    assert kube.get("MemoryBackup", kube.a, "day-4")["spec"]["storeRef"]["name"] == "other-store"  # type: ignore[index]
    assert names(kube, kube.b) == {"day-3"}
    assert result.summary["pruned"] == ["day-4", "day-3", "day-2"]
    assert "memoryBackupsNotDeleted" not in result.summary
    # The termination message stays a MemoryBackup status the operator can read.
    message = json.loads(result.termination_message)
    assert "pruned" not in message
    assert MemoryBackupStatus.model_validate(message).phase == "Completed"


def test_pruning_without_an_api_still_completes_the_backup(
    dir_env: Path,
    base_env: pytest.MonkeyPatch,
    tmp_path: Path,
    role: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    base_env.setenv("KUBECONFIG", str(kubeconfig))
    base_env.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    four_old_backups(dir_env)
    base_env.setenv(env.BACKUP_MAX_COUNT, "3")

    with caplog.at_level(logging.WARNING, logger="memory_operator.backup"):
        result = role("backup", "--backup", "today")

    assert result.code == 0, result.summary
    assert result.summary["phase"] == "Completed"
    assert DirectoryDestination(dir_env).list_backups(STORE) == ["day-1", "day-2", "today"]
    assert result.summary["pruned"] == ["day-4", "day-3"]
    assert result.summary["memoryBackupsNotDeleted"] == ["day-4", "day-3"]
    warnings = [r.getMessage() for r in caplog.records if "MemoryBackups" in r.getMessage()]
    assert len(warnings) == 1 and "day-4, day-3" in warnings[0]
    message = json.loads(result.termination_message)
    assert MemoryBackupStatus.model_validate(message).phase == "Completed"
