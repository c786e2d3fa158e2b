"""What the recall canary (`memory-operator canary`) reports: printed, and its termination message.

The controller reads it from the finished Job's pod and writes it as the store's `status.lastCanary`
(`CanarySummary.to_last_canary`).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from memory_operator.api.store import LastCanary

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096
# Questions named in a summary as missed, at most.
MISSED_LISTED = 20


class CanarySummary(BaseModel):
    """The outcome of one canary run against one store."""

    # Unknown keys are ignored so that an older controller reads a newer job's summary.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    store: str = ""
    namespace: str = ""
    scenario: str = ""
    """Version of the scenario, e.g. `v1`."""
    facts: int = 0
    """Facts written."""
    questions: int = 0
    """Questions asked."""
    top_k: int = 0
    expected: int = 0
    """Expected facts over all questions."""
    found: int = 0
    """Expected facts found, unchanged, in the top k results of their question."""
    recall: float | None = None
    latency_p50_milliseconds: float | None = None
    latency_p95_milliseconds: float | None = None
    min_recall: float = 0.95
    max_latency_p95_milliseconds: float = 2000.0
    missed: list[str] = Field(default_factory=list)
    """Questions whose expected facts were not all found (the first few)."""
    left_behind: int = 0
    """Facts still in the store after the run deleted them (a failed delete)."""
    duration_seconds: float = 0.0
    error: str | None = None

    @property
    def recall_ok(self) -> bool:
        return self.recall is not None and self.recall >= self.min_recall

    @property
    def latency_ok(self) -> bool:
        p95 = self.latency_p95_milliseconds
        return p95 is not None and p95 <= self.max_latency_p95_milliseconds

    @property
    def passed(self) -> bool:
        return self.error is None and self.recall_ok and self.latency_ok and not self.left_behind

    def verdict(self) -> str:
        """Why the run failed, in one line; empty when it passed."""
        if self.error is not None:
            return self.error
        reasons = []
        if not self.recall_ok:
            reasons.append(f"recall@{self.top_k} {self.recall} is below {self.min_recall}")
        if not self.latency_ok:
            bound = self.max_latency_p95_milliseconds
            reasons.append(f"p95 latency {self.latency_p95_milliseconds} ms is above {bound} ms")
        if self.left_behind:
            reasons.append(f"{self.left_behind} synthetic memories could not be deleted")
        return "; ".join(reasons)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def termination_message(self, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
        """Compact JSON under `limit` bytes: the missed questions go first, then the error is cut."""
        compact = self.model_copy(deep=True)
        while len(_dump(compact).encode()) > limit and compact.missed:
            compact.missed.pop()
        if len(_dump(compact).encode()) > limit and compact.error:
            compact.error = compact.error[: max(limit // 2, 16)] + "..."
        return _dump(compact)

    def to_last_canary(self, finished_at: str, job: str | None, job_succeeded: bool) -> LastCanary:
        """The store status entry for this run; a Job that failed never passed, whatever it said."""
        error = self.error
        if error is None and not job_succeeded and self.passed:
            error = "the canary Job failed; see its pod's logs"
        if error is None and not self.passed:
            error = self.verdict()
        return LastCanary(
            time=finished_at,
            passed=job_succeeded and self.passed,
            recall=self.recall,
            top_k=self.top_k or None,
            latency_p50_milliseconds=self.latency_p50_milliseconds,
            latency_p95_milliseconds=self.latency_p95_milliseconds,
            scenario=self.scenario or None,
            questions=self.questions or None,
            job=job,
            error=error,
        )


def _dump(summary: CanarySummary) -> str:
    return json.dumps(summary.model_dump(by_alias=True, mode="json"), separators=(",", ":"))
