"""What the jobs report: JSON printed and left as their container's termination message.

The controller reads the termination message of a finished Job's pod: an expiration run becomes the
policy's `lastRuns` entry (`ExpirationSummary.to_store_run`), a backup's summary is its MemoryBackup
status (`MemoryBackupStatus`), a restore's says what it restored or why it failed.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from memory_operator.api.policy import AuditFinding, AuditResult, RuleResult, StoreRun

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096


class _Wire(BaseModel):
    # Unknown keys are ignored so that an older controller reads a newer job's summary.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class RuleSummary(_Wire):
    """What one rule matched and deleted."""

    name: str
    matched: int = 0
    deleted: int = 0
    ids: list[str] = Field(default_factory=list)
    """Some of the matched memory ids (dry runs only, up to the listing bound)."""


class FindingSummary(_Wire):
    """One kind of audit finding: how many, in how many scopes, and some of the memory ids."""

    count: int = 0
    scopes: int = 0
    sample_ids: list[str] = Field(default_factory=list)

    def to_finding(self) -> AuditFinding:
        return AuditFinding(count=self.count, scopes=self.scopes, sample_ids=list(self.sample_ids))


class AuditSummary(_Wire):
    """What the audit after an expiration run found (and, with `dedupe: exact`, deleted)."""

    memories: int = 0
    scopes: int = 0
    exact_duplicates: FindingSummary = Field(default_factory=FindingSummary)
    near_duplicates: FindingSummary | None = None
    stale: FindingSummary = Field(default_factory=FindingSummary)
    deduplicated: int = 0
    near_duplicate_searches: int = 0
    """Vector searches Qdrant ran for the near duplicates (for the logs and the benchmark)."""
    duration_seconds: float = 0.0

    def findings(self) -> list[FindingSummary]:
        return [f for f in (self.exact_duplicates, self.near_duplicates, self.stale) if f is not None]

    def to_result(self) -> AuditResult:
        return AuditResult(
            memories=self.memories,
            scopes=self.scopes,
            exact_duplicates=self.exact_duplicates.to_finding(),
            near_duplicates=self.near_duplicates.to_finding() if self.near_duplicates else None,
            stale=self.stale.to_finding(),
            deduplicated=self.deduplicated,
            duration_seconds=self.duration_seconds,
        )


class ExpirationSummary(_Wire):
    """The outcome of one expiration run on one store."""

    store: str = ""
    namespace: str = ""
    collection: str = ""
    dry_run: bool = False
    rules: list[RuleSummary] = Field(default_factory=list)
    matched: int = 0
    deleted: int = 0
    entities_pruned: int = 0
    """Entity records of mem0's `<collection>_entities` that were unlinked from purged memories."""
    duration_seconds: float = 0.0
    error: str | None = None
    audit: AuditSummary | None = None
    """The audit after the run (`spec.audit`), when the policy asks for one and the run got that far."""

    def add_rule(self, rule: RuleSummary) -> None:
        self.rules.append(rule)
        self.matched += rule.matched
        self.deleted += rule.deleted

    @property
    def succeeded(self) -> bool:
        return self.error is None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def termination_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON under `limit` bytes: listed ids go first, then the audit's sample ids, then the
        error is cut, then rules."""
        compact = self.model_copy(deep=True)
        for rule in compact.rules:
            rule.ids = []
        text = _dump(compact)
        if len(text.encode()) <= limit:
            return text
        if compact.audit is not None:
            for finding in compact.audit.findings():
                finding.sample_ids = []
        if compact.error and len(compact.error) > 512:
            compact.error = compact.error[:509] + "..."
        while len(_dump(compact).encode()) > limit and compact.rules:
            # Totals stay exact; only the per-rule breakdown is shortened.
            compact.rules.pop()
        return _dump(compact)

    def to_store_run(self, finished_at: str) -> StoreRun:
        """The policy status entry for this run, finished at `finished_at` (RFC 3339)."""
        return StoreRun(
            store=self.store,
            time=finished_at,
            succeeded=self.succeeded,
            dry_run=self.dry_run,
            matched=self.matched,
            deleted=self.deleted,
            duration_seconds=self.duration_seconds,
            rules=[RuleResult(name=r.name, matched=r.matched, deleted=r.deleted) for r in self.rules],
            error=self.error,
            audit=self.audit.to_result() if self.audit is not None else None,
        )


class RestoreSummary(_Wire):
    """The outcome of a restore: the collections restored, or why it failed."""

    phase: str = ""
    error: str | None = None
    location: str | None = None
    """Where the backup was read from."""


def _dump(summary: ExpirationSummary) -> str:
    return json.dumps(
        summary.model_dump(by_alias=True, mode="json", exclude={"rules": {"__all__": {"ids"}}}),
        separators=(",", ":"),
    )
