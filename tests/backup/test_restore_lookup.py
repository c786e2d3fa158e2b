"""`memory-operator restore` finds a backup through its MemoryBackup, on a real API server."""

from __future__ import annotations

from typing import Any

import pytest

from backup.conftest import MEMORIES, STORE, Kube
from memory_operator import env

pytestmark = pytest.mark.slow


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
