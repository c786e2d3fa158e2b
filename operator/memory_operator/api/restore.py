"""What the restore job (`memory-operator restore`) reports: printed, and its termination message.

The controller reads it from the restore Job's pod (`RestoreSummary.model_validate_json`): on failure,
`reason` and `error` become the store's `Restored` condition and a Warning Event; a version refusal also
names both versions (`backupQdrantVersion`, `storeQdrantVersion`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field

from memory_operator.api.collection import SummaryModel

RestorePhase = Literal["Completed", "Failed"]

# `reason` of a failed restore, one CamelCase word each (for a condition and an Event).
INVALID_SETTINGS = "InvalidSettings"
BACKUP_NOT_FOUND = "BackupNotFound"
NODE_COUNT_MISMATCH = "NodeCountMismatch"
QDRANT_VERSION_MISMATCH = "QdrantVersionMismatch"
CHECKSUM_MISMATCH = "ChecksumMismatch"
DESTINATION_ERROR = "DestinationError"
QDRANT_ERROR = "QdrantError"
VERIFICATION_FAILED = "VerificationFailed"
ERASURE_FAILED = "ErasureFailed"


class RestoredSnapshot(SummaryModel):
    """One snapshot file recovered onto one Qdrant node."""

    collection: str
    """The collection it was recovered into (the restored store's name for it)."""
    node: int
    """Position of the node (the StatefulSet ordinal)."""
    snapshot: str
    """The snapshot's name in the backup."""
    sha256: str | None = None
    size_bytes: int | None = None


class SkippedCollection(SummaryModel):
    """A collection left as it was: it already held points (restored before, or written since)."""

    collection: str
    points: int


class CollectionCheck(SummaryModel):
    """The check of a restored collection: an active replica for every shard, the backup's point count."""

    collection: str
    points: int
    """Exact point count after the restore."""
    expected_points: int | None = None
    """The backup's count; `None` for a backup that recorded none."""
    expected_points_max: int | None = None
    """Set when the collection was written to during the backup: the count lies between the two."""
    shards: int = 0
    """Shards of the collection, each with at least one active replica."""


class RestoreSummary(SummaryModel):
    """The outcome of one run of the restore job."""

    phase: RestorePhase = "Failed"
    reason: str | None = None
    """Why it failed, one CamelCase word: `InvalidSettings`, `BackupNotFound`, `NodeCountMismatch`,
    `QdrantVersionMismatch`, `ChecksumMismatch`, `DestinationError`, `QdrantError`,
    `VerificationFailed` or `ErasureFailed`."""
    error: str | None = None
    """What went wrong, for a person."""
    store: str = ""
    backup: str = ""
    location: str | None = None
    """Where the backup was read from."""
    start_time: str | None = None
    stop_time: str | None = None
    backup_qdrant_version: str | None = None
    """Qdrant version(s) the backup's snapshots were taken with."""
    store_qdrant_version: str | None = None
    """Qdrant version(s) the store runs."""
    restored: list[RestoredSnapshot] = Field(default_factory=list)
    skipped: list[SkippedCollection] = Field(default_factory=list)
    verified: list[CollectionCheck] = Field(default_factory=list)
    uploads_not_deleted: list[str] = Field(default_factory=list)
    """Uploaded snapshot files that could not be deleted from a node's snapshots folder (`<node>: <file>`)."""
    erasures_reapplied: int = 0
    """MemoryErasures re-applied after the collections were restored (the server was still stopped)."""
    erasures_deleted: int = 0
    """Memories they deleted (besides related records: entities, app states)."""
    erasures: list[str] = Field(default_factory=list)
    """The names of the MemoryErasures re-applied (cut first when the summary is too long)."""

    @property
    def succeeded(self) -> bool:
        return self.phase == "Completed"

    def trimmable(self) -> Iterable[list[Any]]:
        """The per-snapshot list goes first, then the names of the erasures re-applied."""
        return [self.restored, self.erasures]
