"""Retention prunes the store's oldest backups from the destination and names them in its summary, for
the operator to delete their MemoryBackups: the job never talks to the Kubernetes API."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from backup.conftest import STORE
from backup.test_backup import old_backup
from memory_operator import env
from memory_operator.api.backup import MemoryBackupStatus
from memory_operator.backup.destination import DirectoryDestination

pytestmark = pytest.mark.slow


def four_old_backups(backups: Path) -> None:
    destination = DirectoryDestination(backups)
    for day in range(1, 5):
        old_backup(destination, f"day-{day}", datetime.timedelta(days=day))


def test_the_pruned_backups_are_named_in_the_summary(
    dir_env: Path, base_env: pytest.MonkeyPatch, tmp_path: Path, role: Any
) -> None:
    # No cluster is reachable, and none is needed.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    base_env.setenv("KUBECONFIG", str(kubeconfig))
    four_old_backups(dir_env)
    base_env.setenv(env.BACKUP_MAX_COUNT, "2")

    result = role("backup", "--backup", "today")

    assert result.code == 0, result.summary
    assert DirectoryDestination(dir_env).list_backups(STORE) == ["day-1", "today"]
    assert result.summary["pruned"] == ["day-4", "day-3", "day-2"]
    # The termination message is a MemoryBackup status, the pruned names included.
    status = MemoryBackupStatus.model_validate(json.loads(result.termination_message))
    assert status.phase == "Completed" and status.pruned == ["day-4", "day-3", "day-2"]
