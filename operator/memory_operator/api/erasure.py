"""The MemoryErasure custom resource: every memory of one person (a user, an agent or a run id) erased
from a store, recorded, and erased again by every later restore of a backup that still holds them.

Also what the erasure job (`memory-operator erase`) reports (`ErasureSummary`) and the file the
operator gives the erasure and restore jobs (`ErasuresFile`): the subjects to erase, which the jobs
cannot read from the Kubernetes API themselves. A subject's id is personal data: it is in the
MemoryErasure's spec and in the store's erasures Secret, never in a status, a summary, an Event, a log
line or a metric.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from memory_operator.api.collection import SummaryModel
from memory_operator.api.common import ApiModel, Condition, ObjectMeta, ObjectName, cel, list_map
from memory_operator.server.scope_id import SCOPE_ID_MAX_LENGTH, SCOPE_ID_PATTERN

KIND = "MemoryErasure"
PLURAL = "memoryerasures"
# The name labels the erasure's Job: a label value.
MAX_NAME_LENGTH = 63

ErasurePhase = Literal["Pending", "Running", "Completed", "Failed"]
FINISHED: tuple[ErasurePhase, ...] = ("Completed", "Failed")

# The condition the erasure's writer keeps, and the one about backups still holding the subject.
ERASED = "Erased"
BACKUPS_HOLD_SUBJECT = "BackupsHoldSubject"

# `reason` of a failed erasure job, one CamelCase word each (for a condition and an Event).
INVALID_SETTINGS = "InvalidSettings"
STORE_UNAVAILABLE = "StoreUnavailable"
"""Qdrant could not be reached or answered with a server error: the operator runs the job again."""
QDRANT_ERROR = "QdrantError"
FLAVOR_NOT_SUPPORTED = "FlavorNotSupported"

# A subject id follows the memory server's scope id grammar: the value is compared with Qdrant's
# payloads exactly as given.
SubjectId = Annotated[str, Field(min_length=1, max_length=SCOPE_ID_MAX_LENGTH, pattern=SCOPE_ID_PATTERN)]
# The payload key of each subject field, as mem0 writes it.
PAYLOAD_KEYS = {"userId": "user_id", "agentId": "agent_id", "runId": "run_id"}


class ErasureSubject(ApiModel):
    """Whose memories: exactly one of `userId`, `agentId` and `runId`, an exact value (no pattern)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "(has(self.userId) ? 1 : 0) + (has(self.agentId) ? 1 : 0) + (has(self.runId) ? 1 : 0) == 1",
            "a subject is exactly one of userId, agentId and runId",
        )
    )

    user_id: SubjectId | None = None
    """Every memory of this user id, whatever its agent and run. Ids are those the memory server takes:
    1 to 253 ASCII letters, digits and `_ . : @ + | -`, starting with a letter, a digit or `_`."""
    agent_id: SubjectId | None = None
    """Every memory of this agent id, whatever its user and run."""
    run_id: SubjectId | None = None
    """Every memory of this run (session) id, whatever its user and agent."""

    @model_validator(mode="after")
    def _exactly_one(self) -> ErasureSubject:
        if sum(value is not None for value in (self.user_id, self.agent_id, self.run_id)) != 1:
            raise ValueError("a subject is exactly one of userId, agentId and runId")
        return self

    @property
    def kind(self) -> str:
        """`userId`, `agentId` or `runId`: what may be said of a subject (never its value)."""
        return next(name for name, value in self._fields() if value is not None)

    @property
    def value(self) -> str:
        return next(value for _, value in self._fields() if value is not None)

    @property
    def payload_key(self) -> str:
        """The payload key mem0 keeps this id under (`user_id`, `agent_id`, `run_id`)."""
        return PAYLOAD_KEYS[self.kind]

    def _fields(self) -> tuple[tuple[str, str | None], ...]:
        return (("userId", self.user_id), ("agentId", self.agent_id), ("runId", self.run_id))


class MemoryErasureSpec(ApiModel):
    """Desired state of a MemoryErasure. Immutable: an erasure is a record of what was asked."""

    model_config = ConfigDict(json_schema_extra=cel("self == oldSelf", "a MemoryErasure spec is immutable"))

    store: ObjectName
    """The MemoryStore of this namespace whose memories of the subject are erased; its restores re-apply
    the erasure."""
    subject: ErasureSubject
    """Whose memories: one user, agent or run id."""
    reason: str | None = Field(default=None, max_length=1024)
    """Why, for the record (e.g. `GDPR article 17 request`); shown in the store's Event: no personal data."""
    reference: str | None = Field(default=None, max_length=253)
    """A reference of the request, e.g. a ticket id; shown in the store's Event: no personal data."""


class MemoryErasureStatus(ApiModel):
    """Observed state of a MemoryErasure: what was erased, when, and which backups still hold the
    subject. Never the subject's id."""

    phase: ErasurePhase = "Pending"
    """`Pending`, `Running` (also while it waits to run again after the store was down), `Completed`
    or `Failed`."""
    deleted: int | None = None
    """Memories of the subject deleted."""
    related_deleted: int | None = None
    """Records derived from those memories that were deleted or unlinked too: mem0's entities and the
    server's per-user app states."""
    start_time: str | None = None
    """When the erasure first started (RFC 3339)."""
    completion_time: str | None = None
    """When it completed or failed (RFC 3339); restores of backups taken before it re-apply it."""
    verified: bool | None = None
    """`true` once a count of the subject's memories after the erasure returned zero."""
    remaining: int | None = None
    """Memories of the subject counted after the erasure (written meanwhile); `0` when verified."""
    attempts: int | None = None
    """Runs of the erasure job so far: it runs again, with a growing delay, while the store is down."""
    error: str | None = None
    """Why the erasure failed, or why its last run did."""
    backups_holding_subject: int | None = None
    """Backups of the store taken before the erasure completed that still exist: they may hold the
    subject's memories until retention prunes them (a restore of one re-applies this erasure)."""
    backups_age_out_by: str | None = None
    """When the last of those backups will have been pruned by the store's retention (RFC 3339), at the
    scheduled backup that prunes it; unset when none is left, or when none would ever be pruned (no
    schedule, or backups suspended)."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """`Erased`: whether the subject's memories are gone, or why not yet; `BackupsHoldSubject`."""
    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""


class MemoryErasure(ApiModel):
    """The erasure of every memory of one user, agent or run id from a MemoryStore: run once, recorded in
    its status, and re-applied by every later restore of the store (or of a store restored from its
    backups). Deleting it undoes nothing, but ends the re-application: keep it."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "memory-operator.io/v1alpha1"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MemoryErasureSpec
    status: MemoryErasureStatus | None = None

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> MemoryErasure:
        if len(self.metadata.name) > MAX_NAME_LENGTH:
            raise ValueError(f"a MemoryErasure name has at most {MAX_NAME_LENGTH} characters")
        return self


# --- what the jobs are given ------------------------------------------------------------------------


class ErasureEntry(ApiModel):
    """One erasure as the jobs know it: its name and its subject."""

    name: str = Field(min_length=1, max_length=253)
    """The MemoryErasure's name."""
    subject: ErasureSubject
    """Whose memories."""


class ErasuresFile(ApiModel):
    """The store's erasures Secret (`erasures.json`): what the erasure and restore jobs erase."""

    erase: list[ErasureEntry] = Field(default_factory=list)
    """The erasures whose jobs run now (each job erases its own)."""
    reapply: list[ErasureEntry] = Field(default_factory=list)
    """The erasures a running restore re-applies before the server starts."""

    def entry(self, name: str) -> ErasureEntry | None:
        return next((e for e in self.erase if e.name == name), None)


# --- what the erasure job reports ----------------------------------------------------------------


class ErasureSummary(SummaryModel):
    """The outcome of one run of the erasure job; never the subject's id."""

    phase: Literal["Completed", "Failed"] = "Failed"
    reason: str | None = None
    """Why it failed, one CamelCase word: `InvalidSettings`, `StoreUnavailable` (the operator runs it
    again later), `QdrantError` or `FlavorNotSupported`."""
    error: str | None = None
    """What went wrong, for a person."""
    erasure: str = ""
    store: str = ""
    subject_kind: str | None = None
    """`userId`, `agentId` or `runId`."""
    start_time: str | None = None
    stop_time: str | None = None
    deleted: int = 0
    """Memories of the subject deleted."""
    related_deleted: int = 0
    """Entity records and app states deleted or unlinked with them."""
    remaining: int | None = None
    """Memories of the subject counted after the erasure; `None` when it did not get that far."""
    collections: list[str] = Field(default_factory=list)
    """The store's collections the erasure went through."""

    @property
    def succeeded(self) -> bool:
        return self.phase == "Completed"
