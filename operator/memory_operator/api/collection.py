"""What the collection job (`memory-operator collection`) reports: printed, and its termination message.

The job creates the store's collection as the spec says, brings a live one to the settings Qdrant can
change, and replicates shards until every shard has `replicationFactor` active replicas. The controller
reads this summary from the finished Job's pod (`CollectionSetupSummary.model_validate_json`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096

SetupPhase = Literal["Completed", "Failed"]

# `reason` of a failed setup, one CamelCase word each (for a condition and an Event).
INVALID_SETTINGS = "InvalidSettings"
CLUSTER_NOT_READY = "ClusterNotReady"
QDRANT_ERROR = "QdrantError"
INCOMPATIBLE_COLLECTION = "IncompatibleCollection"
REPLICATION_INCOMPLETE = "ReplicationIncomplete"
SHARDS_NOT_ACTIVE = "ShardsNotActive"


class SummaryModel(BaseModel):
    """camelCase on the wire; unknown keys ignored, so an older controller reads a newer job's summary."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def trimmable(self) -> Iterable[list[Any]]:
        """The lists a too long termination message loses items from (from their end, in this order),
        before its error is cut."""
        return ()

    def termination_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON under `limit` bytes: the `trimmable` lists are cut first, then the error."""
        compact = self.model_copy(deep=True)
        for items in compact.trimmable():
            while len(_dump(compact).encode()) >= limit and items:
                items.pop()
        error = getattr(compact, "error", None)
        if len(_dump(compact).encode()) >= limit and error:
            overflow = len(_dump(compact).encode()) - limit + 16
            # Every job's summary has an error; the nested models that share this base have none.
            setattr(compact, "error", error[: max(0, len(error) - overflow)] + "...")  # noqa: B010
        return _dump(compact)


class SettingDifference(SummaryModel):
    """A collection setting whose value in Qdrant is not the spec's."""

    setting: str
    """`vectorSize`, `distance`, `onDisk`, `shardNumber`, `replicationFactor` or `sparseVectors`."""
    desired: str
    """The value the spec asks for."""
    actual: str
    """The value the collection had."""


class ShardReplication(SummaryModel):
    """A replica of a shard the job asked Qdrant to copy onto another peer."""

    shard_id: int
    from_peer: int
    to_peer: int


class CollectionOutcome(SummaryModel):
    """What the job found and did for one collection."""

    name: str
    created: bool = False
    """The job created it (it did not exist)."""
    updated: list[SettingDifference] = Field(default_factory=list)
    """Settings that differed and were changed on the live collection."""
    not_updatable: list[SettingDifference] = Field(default_factory=list)
    """Settings that differ and that Qdrant cannot change on a live collection (a new collection, or a
    restore into one, is the only way)."""
    payload_indexes_created: list[str] = Field(default_factory=list)
    """Payload fields indexed by the job (mem0's filter fields)."""
    replications: list[ShardReplication] = Field(default_factory=list)
    """Shard replicas the job had Qdrant copy, so that every shard has the replication factor."""
    under_replicated_shards: list[int] = Field(default_factory=list)
    """Shards that still had fewer active replicas than the replication factor when the job ended."""


class CollectionSetupSummary(SummaryModel):
    """The outcome of one run of the collection job."""

    phase: SetupPhase = "Failed"
    """`Completed`, or `Failed` with `reason` and `error`."""
    reason: str | None = None
    """Why it failed, one CamelCase word: `InvalidSettings`, `ClusterNotReady`, `QdrantError`,
    `IncompatibleCollection` (vector size or distance differ: the server cannot use it) or
    `ReplicationIncomplete`."""
    error: str | None = None
    """What went wrong, for a person."""
    start_time: str | None = None
    stop_time: str | None = None
    peers: int = 0
    """Qdrant peers that had joined the cluster (1 for a single node)."""
    collections: list[CollectionOutcome] = Field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.phase == "Completed"

    def trimmable(self) -> Iterable[list[Any]]:
        """Replication details go first."""
        return [outcome.replications for outcome in self.collections]


class UpgradeCheckSummary(SummaryModel):
    """What the upgrade check (`memory-operator upgrade-check`) found between two nodes of a rolling
    Qdrant upgrade."""

    phase: SetupPhase = "Failed"
    """`Completed` when the cluster was whole again, or `Failed` with `reason` and `error`."""
    reason: str | None = None
    """Why it failed, one CamelCase word: `InvalidSettings`, `ClusterNotReady`, `ShardsNotActive` or
    `QdrantError`."""
    error: str | None = None
    start_time: str | None = None
    stop_time: str | None = None
    versions: list[str] = Field(default_factory=list)
    """Each peer's Qdrant version, in ordinal order."""
    inactive: list[str] = Field(default_factory=list)
    """What was not active yet when the job gave up: `<collection> shard <id> on peer <id>: <state>`,
    or a transfer under way."""

    @property
    def succeeded(self) -> bool:
        return self.phase == "Completed"

    def trimmable(self) -> Iterable[list[Any]]:
        """The list of inactive replicas is cut first."""
        return [self.inactive]


def _dump(summary: SummaryModel) -> str:
    return json.dumps(summary.to_wire(), separators=(",", ":"))
