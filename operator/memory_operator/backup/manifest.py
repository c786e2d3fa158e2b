"""`manifest.json`: what a completed backup holds. Written last, so its presence marks a backup complete."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

MANIFEST_NAME = "manifest.json"
# 2: `points`, the exact point count of each collection around its snapshots (restore checks it).
FORMAT_VERSION = 2


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True, indent=2) + "\n"


class SnapshotFile(_Model):
    """One collection snapshot taken on one Qdrant node."""

    collection: str
    """Collection the snapshot is of."""
    peer: str
    """URL of the Qdrant node it was taken on."""
    node: int = 0
    """Position of that node among the store's nodes (the StatefulSet ordinal); restore matches on it."""
    name: str
    """Snapshot file name as Qdrant made it."""
    file: str
    """Path of the file relative to the backup's folder."""
    size: int
    """Bytes."""
    sha256: str
    """SHA-256 of the file, hex."""
    qdrant_version: str | None = None
    """Version of the Qdrant node; restore refuses a store running another minor version."""
    shards: list[int] | None = None
    """Shards the node held an active replica of when the snapshot was taken (format 2); a snapshot holds
    the data of the node's own replicas only."""


class CollectionPoints(_Model):
    """Exact point count of a collection, counted just before its first snapshot and just after its last.

    The two differ when the collection was written to during the backup; the snapshots then hold a
    count between them.
    """

    collection: str
    before: int
    after: int


class Manifest(_Model):
    """Contents of a completed backup."""

    format_version: int = FORMAT_VERSION
    store: str
    """The MemoryStore backed up."""
    backup: str
    """The MemoryBackup."""
    namespace: str | None = None
    collection: str
    """The store's memory collection (others are named after it, e.g. `<collection>_entities`)."""
    start_time: datetime.datetime
    time: datetime.datetime
    """When the backup completed."""
    snapshots: list[SnapshotFile] = Field(default_factory=list)
    points: list[CollectionPoints] = Field(default_factory=list)
    """Point counts per collection (format 2; absent from older backups)."""

    @property
    def size(self) -> int:
        return sum(s.size for s in self.snapshots)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        return cls.model_validate_json(text)
