"""The MemoryPolicy custom resource: retention rules enforced on the stores it selects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from memory_operator.api.common import (
    CRON_PATTERN,
    DURATION_PATTERN,
    ApiModel,
    Condition,
    LabelSelector,
    ObjectMeta,
    cel,
    list_map,
)

KIND = "MemoryPolicy"
PLURAL = "memorypolicies"

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=16)]


class RuleMatch(ApiModel):
    """Which memories a rule applies to; every given field must match, and an empty match is every memory.
    A value of `*` matches any memory that has the field at all, e.g. `runId: "*"` for session memories."""

    metadata: dict[str, str] = Field(default_factory=dict)
    """Metadata fields and the values they must have, e.g. `{type: incident}`."""
    user_id: str | None = Field(default=None, max_length=253)
    """Only memories of this user."""
    agent_id: str | None = Field(default=None, max_length=253)
    """Only memories of this agent."""
    run_id: str | None = Field(default=None, max_length=253)
    """Only memories of this run (session); `*` for every memory written in a run."""
    categories: list[str] = Field(default_factory=list, max_length=64)
    """Only memories in any of these categories."""


class RetentionRule(ApiModel):
    """How long matching memories live: either `maxAge` or `keep: true`."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            "has(self.maxAge) != (has(self.keep) && self.keep)",
            "a rule sets exactly one of maxAge and keep: true",
        )
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Name of the rule, reported in the policy status."""
    match: RuleMatch = Field(default_factory=RuleMatch)
    """Which memories the rule applies to."""
    max_age: Duration | None = None
    """Matching memories older than this (measured from `ageField`) are deleted, e.g. `7d`, `90d`."""
    keep: bool = False
    """Protect matching memories from every other rule of the policy."""
    age_field: str = Field(default="updated_at", pattern=r"^(created_at|updated_at)$")
    """Timestamp the age is measured from: `updated_at` or `created_at`."""

    @model_validator(mode="after")
    def _max_age_or_keep(self) -> RetentionRule:
        if (self.max_age is None) == (not self.keep):
            raise ValueError("a rule sets exactly one of maxAge and keep: true")
        return self


# Cosine similarity at or above which two memories of a scope are near duplicates. With the default
# embedder (all-MiniLM-L6-v2) one fact reworded slightly (a full stop, a spelling, a word changed or
# added) scores 0.95 to 1.0, a free paraphrase about 0.91, unrelated facts under 0.5.
DEFAULT_NEAR_DUPLICATE_SIMILARITY = 0.95


class AuditSpec(ApiModel):
    """An audit of the memories left after each expiration run, by the same job: exact duplicates, near
    duplicates and stale memories, counted per store in the policy status and the operator's metrics."""

    stale_after: Duration = "90d"
    """Memories not updated for longer than this are counted as stale, e.g. `90d`."""
    near_duplicates: bool = True
    """Look for near duplicates: one vector search per distinct memory of a scope, run by Qdrant in
    batches (no vector leaves Qdrant). Off, only exact duplicates and stale memories are counted."""
    near_duplicate_similarity: float = Field(default=DEFAULT_NEAR_DUPLICATE_SIMILARITY, ge=0.5, le=1.0)
    """Two memories of the same scope whose vectors' cosine similarity is at least this are near
    duplicates (exact duplicates are counted apart)."""
    dedupe: Literal["none", "exact"] = "none"
    """`exact` deletes exact duplicates (the same text in the same scope, by mem0's content hash),
    keeping the oldest of each; with `dryRun` it only lists them. `none` only counts them."""
    sample_size: int = Field(default=5, ge=0, le=10)
    """Memory ids listed per kind of finding, to look at."""


class MemoryPolicySpec(ApiModel):
    """Desired state of a MemoryPolicy."""

    selector: LabelSelector = Field(default_factory=LabelSelector)
    """Selects the MemoryStores of this namespace the policy applies to; empty selects all."""
    schedule: str = Field(default="0 3 * * *", pattern=CRON_PATTERN)
    """Cron schedule of the expiration runs (in UTC)."""
    rules: list[RetentionRule] = Field(default_factory=list, max_length=100)
    """Retention rules; `keep` rules win over every `maxAge` rule."""
    honor_expiration_date: bool = True
    """Delete memories whose `expiration_date` has passed (mem0 hides them but never deletes them)."""
    dry_run: bool = False
    """Count and list what would be deleted, deleting nothing."""
    suspend: bool = False
    """Stop scheduling runs."""
    audit: AuditSpec | None = None
    """Audit the store for duplicate and stale memories after each expiration run; none when unset."""


class RuleResult(ApiModel):
    """What one rule did in a run."""

    name: str
    """Name of the rule."""
    matched: int = 0
    """Memories the rule matched."""
    deleted: int = 0
    """Memories the rule deleted (none in a dry run)."""


class AuditFinding(ApiModel):
    """One kind of finding of an audit."""

    count: int = 0
    """Exact duplicates: the copies beyond the oldest of each; near duplicates: the pairs; stale: the
    memories."""
    scopes: int = 0
    """Scopes (user, agent and run ids together) with at least one."""
    sample_ids: list[str] = Field(default_factory=list)
    """Some of the memories concerned (the newer copies, both memories of a pair, the stalest)."""


class AuditResult(ApiModel):
    """What the audit found in a store after an expiration run."""

    memories: int = 0
    """Memories audited (the canary's synthetic ones are not)."""
    scopes: int = 0
    """Scopes audited."""
    exact_duplicates: AuditFinding = Field(default_factory=AuditFinding)
    """Memories with the same text (mem0's content hash) as an older one of the same scope."""
    near_duplicates: AuditFinding | None = None
    """Pairs of distinct memories of a scope at or above the similarity threshold; none when off."""
    stale: AuditFinding = Field(default_factory=AuditFinding)
    """Memories not updated for longer than `staleAfter`."""
    deduplicated: int = 0
    """Exact duplicates deleted (`dedupe: exact`; none in a dry run)."""
    duration_seconds: float | None = None
    """How long the audit took."""


class StoreRun(ApiModel):
    """The last expiration run on one store."""

    store: str
    """Name of the MemoryStore."""
    time: str
    """When the run finished (RFC 3339)."""
    job: str | None = None
    """The Job that ran it."""
    succeeded: bool = True
    """Whether the run succeeded."""
    dry_run: bool = False
    """Whether it was a dry run."""
    matched: int = 0
    """Memories matched by all rules."""
    deleted: int = 0
    """Memories deleted."""
    duration_seconds: float | None = None
    """How long the run took."""
    rules: list[RuleResult] = Field(default_factory=list)
    """Per-rule counts."""
    error: str | None = None
    """Why the run failed."""
    audit: AuditResult | None = None
    """What the audit found after the run (`spec.audit`)."""


class MemoryPolicyStatus(ApiModel):
    """Observed state of a MemoryPolicy."""

    matched_stores: list[str] = Field(default_factory=list)
    """Names of the MemoryStores the policy selects."""
    last_runs: list[StoreRun] = Field(default_factory=list, json_schema_extra=list_map("store"))
    """Last run per store."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=list_map("type"))
    """`Ready` and `LastRunSucceeded`."""
    observed_generation: int | None = None
    """The `metadata.generation` last reconciled."""


class MemoryPolicy(ApiModel):
    """Retention rules for agent memories, enforced by scheduled expiration jobs."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = "memory-operator.io/v1alpha1"
    kind: str = KIND
    metadata: ObjectMeta
    spec: MemoryPolicySpec = Field(default_factory=MemoryPolicySpec)
    status: MemoryPolicyStatus | None = None
