"""The MemoryBackup custom resource: one backup of a store's collections."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from memory_operator.api.common import ApiModel, Condition, ObjectMeta, ObjectName, cel, list_map

KIND = "MemoryBackup"
PLURAL = "memorybackups"

BackupPhase = Literal["Pending", "Running", "Completed", "Failed"]


class StoreRef(ApiModel):
    """A MemoryStore in the backup's namespace."""

    name: ObjectName
    """Name of the MemoryStore."""


class MemoryBackupSpec(ApiModel):
    """Desired state of a MemoryBackup. Immutable: a backup is taken once."""

    model_config = ConfigDict(json_schema_extra=cel("self == oldSelf", "a MemoryBackup spec is immutable"))

    store_ref: StoreRef
    """The store to back up; its `backup.destination` says where the backup goes."""


class CollectionSnapshot(ApiModel):
    """A snapshot of one collection on one Qdrant node."""

    collection: str
    """Collection name."""
    name: str
    """Snapshot file name."""
    peer: str | None = None
    """Qdrant node the snapshot was taken on (distributed mode)."""
    size_bytes: int | None = None
    """Size of the snapshot file."""
    checksum: str | None = None
    """SHA-256 checksum of the snapshot file."""


class MemoryBackupStatus(ApiModel):
    """Observed state of a MemoryBackup."""

    phase: BackupPhase = "Pending"
    """`Pending`, `Running`, `Completed` or `Failed`."""
    start_time: str | None = None
    """When the backup started (RFC 3339)."""
    stop_time: str | None = None
    """When it completed or failed (RFC 3339)."""
    size_bytes: int | None = None
    """Total size of the snapshots."""
    location: str | None = None
    """Where the backup is, e.g. `s3://bucket/prefix/name/` or `pvc://claim/name/`."""
    snapshots: list[CollectionSnapshot] = Field(default_factory=list)
    """One snapshot per collection and node."""
    error: str | None = None
    """Why the backup failed."""
    pruned: list[str] = Field(default_factory=list)
    """Older backups of the store that this one's retention removed from the destination; the operator
    deletes their MemoryBackups."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """`Ready` when completed."""
    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""


class MemoryBackup(ApiModel):
    """A backup of a MemoryStore's collections, taken once, on demand or by schedule."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "memory-operator.io/v1alpha1"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MemoryBackupSpec
    status: MemoryBackupStatus | None = None
