"""Memory quality in status: the recall canary's `lastCanary` and the audit figures (pure).

`lastCanary` is a field of the store's status with a writer of its own (field manager
`memory-operator-canary`): the result of each finished canary Job, newest first; the store's reconcile
never writes it. The audit's result travels in the policy's `lastRuns` entry of the store (written by
`policies.run_record`'s writer); here it is read back for the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from memory_operator.api.canary import CanarySummary
from memory_operator.controller import results, status
from memory_operator.controller.decide import Event

CANARY_MANAGER = "memory-operator-canary"
LAST_CANARY = "lastCanary"


@dataclass(frozen=True)
class CanaryRecord:
    last_canary: dict[str, Any]
    """The store's `lastCanary` (wire form)."""
    events: list[Event]


def canary_summary(message: Mapping[str, Any] | None) -> CanarySummary:
    """The Job's summary; one that says why it cannot be read when it cannot."""
    if message is None:
        return CanarySummary(error="the canary Job failed without a summary; see its pod's logs")
    try:
        return CanarySummary.model_validate(dict(message))
    except ValidationError:
        return CanarySummary(error=f"the canary Job left an unreadable summary: {message!r}"[:1024])


def canary_record(
    store: Mapping[str, Any], job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: str
) -> CanaryRecord | None:
    """The store's `lastCanary` from a finished canary Job, unless status already shows it or a newer
    run; a Warning Event when the run failed, a Normal one when it passed after a failure."""
    finished = results.job_finished(job)
    if finished is None:
        return None
    when = results.finish_time(job, now)
    name = str(job["metadata"]["name"])
    current = (store.get("status") or {}).get(LAST_CANARY) or {}
    # Runs are ordered by their end, then by Job name (two may end within the same second).
    if (str(current.get("time") or ""), str(current.get("job") or "")) >= (when, name):
        return None
    summary = canary_summary(results.termination_message(pods))
    last = summary.to_last_canary(when, name, finished)
    if last.error is not None:
        last.error = last.error[: results.MAX_ERROR]
    events = []
    if not last.passed:
        events.append(Event(store, "CanaryFailed", f"the recall canary failed at {when}: {last.error}"))
    elif current and not current.get("passed", True):
        message = f"the recall canary passed at {when}: recall@{last.top_k} {last.recall}"
        events.append(Event(store, "CanaryPassed", message, warning=False))
    return CanaryRecord(last.wire(), events)


def canary_gauges(store: Mapping[str, Any]) -> dict[str, float] | None:
    """The canary's figures for the metrics, from the store's spec and `lastCanary`; None when the
    store has no canary or no run yet."""
    canary = ((store.get("spec") or {}).get("monitoring") or {}).get("canary")
    last = (store.get("status") or {}).get(LAST_CANARY)
    if canary is None or not last:
        return None
    gauges = {
        "passed": 1.0 if last.get("passed") else 0.0,
        "time": results_epoch(str(last.get("time") or "")),
        "min_recall": float(canary.get("minRecall", 0.95)),
        "max_p95_seconds": float(canary.get("maxLatencyP95Milliseconds", 2000)) / 1000,
    }
    if last.get("recall") is not None:
        gauges["recall"] = float(last["recall"])
    for quantile in ("p50", "p95"):
        value = last.get(f"latency{quantile.upper()}Milliseconds")
        if value is not None:
            gauges[f"{quantile}_seconds"] = float(value) / 1000
    return gauges


def results_epoch(rfc3339: str) -> float:
    try:
        return status.parse_rfc3339(rfc3339).timestamp()
    except ValueError:
        return 0.0


def audit_figures(run: Mapping[str, Any]) -> dict[str, float] | None:
    """The audit's counts of a `lastRuns` entry, for the metrics; None when the run had no audit."""
    audit = run.get("audit")
    if not audit:
        return None
    figures = {
        "memories": float(audit.get("memories") or 0),
        "exact": float((audit.get("exactDuplicates") or {}).get("count") or 0),
        "stale": float((audit.get("stale") or {}).get("count") or 0),
        "deduplicated": float(audit.get("deduplicated") or 0),
    }
    near = audit.get("nearDuplicates")
    if near is not None:
        figures["near"] = float(near.get("count") or 0)
    return figures
