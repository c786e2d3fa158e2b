"""`memory-operator restore` reads the backup where its MemoryBackup says it is: the operator gives the
backup's store and location (MEMORY_BACKUP_SOURCE_STORE, MEMORY_BACKUP_LOCATION); no API is needed."""

from __future__ import annotations

from typing import Any

import pytest

from backup.conftest import MEMORIES, STORE
from memory_operator import env

pytestmark = pytest.mark.slow


def test_restore_reads_the_backup_at_the_location_it_is_given(
    s3_env: Any, s3_server: str, qdrant: Any, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    """A store without a destination of its own restores from the location of the MemoryBackup."""
    taken = role("backup", "--backup", "b1")
    assert taken.code == 0
    for name in (env.BACKUP_S3_BUCKET, env.BACKUP_S3_PREFIX, env.BACKUP_S3_ENDPOINT, env.BACKUP_S3_REGION):
        base_env.delenv(name)
    # The AWS SDK's own settings, as a role or the pod's environment would give them.
    base_env.setenv("AWS_ENDPOINT_URL", s3_server)
    base_env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    base_env.setenv(env.COLLECTION, "fresh")
    base_env.setenv(env.BACKUP_SOURCE_STORE, STORE)
    base_env.setenv(env.BACKUP_LOCATION, taken.summary["location"])

    result = role("restore", "--store", "fresh-store", "--backup", "b1")

    assert result.code == 0, result.summary
    assert result.summary["location"] == taken.summary["location"]
    assert set(qdrant.points("fresh") or {}) == set(MEMORIES)


def test_restore_from_a_claim_it_cannot_mount_says_so(
    qdrant: Any, base_env: pytest.MonkeyPatch, role: Any
) -> None:
    base_env.setenv(env.BACKUP_SOURCE_STORE, STORE)
    base_env.setenv(env.BACKUP_LOCATION, f"pvc://agents-backups/{STORE}/b1/")

    result = role("restore", "--store", "fresh-store", "--backup", "b1")

    assert result.code == 1
    assert "claimName agents-backups" in result.summary["error"]
