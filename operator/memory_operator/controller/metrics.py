"""Prometheus metrics of the operator, served on their own port."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("memory_operator_reconciles_total", "Reconciles of MemoryStores, by result.", ["result"])
RECONCILE_DURATION = Histogram(
    "memory_operator_reconcile_duration_seconds",
    "Duration of MemoryStore reconciles.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STORES = Gauge("memory_operator_stores", "MemoryStores known to the operator, by phase.", ["phase"])
API_WRITES = Counter("memory_operator_api_writes_total", "Writes to the Kubernetes API, by kind.", ["kind"])
DRIFT_REPAIRS = Counter(
    "memory_operator_drift_repairs_total",
    "Children found changed or missing by the periodic check and restored.",
)
BACKUP_LAST_SUCCESS = Gauge(
    "memory_operator_backup_last_success_timestamp_seconds",
    "Unix time of the last successful backup of a store.",
    ["namespace", "store"],
)
BACKUP_SCHEDULED_SINCE = Gauge(
    "memory_operator_backup_scheduled_since_timestamp_seconds",
    "Unix time since when a store's backups are scheduled (its creation): with no successful backup "
    "since, the backup-missing alert counts from it.",
    ["namespace", "store"],
)
EXPIRATION_RUNS = Counter(
    "memory_operator_expiration_runs_total",
    "Expiration runs seen finished, by result.",
    ["namespace", "store", "policy", "result"],
)
ERASURES = Counter(
    "memory_operator_erasures_total",
    "MemoryErasures seen finished (completed, failed), and their runs failed on a store that was down "
    "and run again (retried), by outcome.",
    ["namespace", "store", "outcome"],
)

PHASES = ("Pending", "Provisioning", "Ready", "Degraded", "Failed", "Paused")


class PhaseBook:
    """The last phase of every store, exported as counts per phase."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}
        for phase in PHASES:
            STORES.labels(phase=phase).set(0)

    def record(self, namespace: str, name: str, phase: str | None) -> None:
        if phase is None:
            self._phases.pop((namespace, name), None)
        else:
            self._phases[(namespace, name)] = phase
        for known in PHASES:
            STORES.labels(phase=known).set(sum(1 for p in self._phases.values() if p == known))

    def __len__(self) -> int:
        return len(self._phases)


PHASE_BOOK = PhaseBook()


def record_backups(
    namespace: str, store: str, scheduled_since: float | None, last_success: float | None
) -> None:
    """The store's backup gauges, from its spec and its MemoryBackups (so a restarted operator has
    them again): unset when the store has no schedule, or is gone."""
    labels = {"namespace": namespace, "store": store}
    if scheduled_since is None:
        _remove(BACKUP_SCHEDULED_SINCE, labels)
    else:
        BACKUP_SCHEDULED_SINCE.labels(**labels).set(scheduled_since)
    if last_success is None:
        _remove(BACKUP_LAST_SUCCESS, labels)
    else:
        BACKUP_LAST_SUCCESS.labels(**labels).set(last_success)


def _remove(gauge: Gauge, labels: dict[str, str]) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels.values())


def serve(port: int, address: str) -> None:
    """Serve `/metrics` on a thread of its own."""
    start_http_server(port, addr=address)


# The recall canary of each store (`spec.monitoring.canary`), from its `status.lastCanary`.
STORE_LABELS = ["namespace", "store"]
CANARY_RECALL = Gauge(
    "memory_operator_canary_recall", "recall@k of the store's last canary run (0 to 1).", STORE_LABELS
)
CANARY_LATENCY = Gauge(
    "memory_operator_canary_latency_seconds",
    "Latency of the last canary run's searches, as its client saw them, by quantile (0.5, 0.95).",
    [*STORE_LABELS, "quantile"],
)
CANARY_PASSED = Gauge(
    "memory_operator_canary_passed", "1 when the store's last canary run passed, else 0.", STORE_LABELS
)
CANARY_LAST_RUN = Gauge(
    "memory_operator_canary_last_run_timestamp_seconds",
    "Unix time when the store's last canary run finished.",
    STORE_LABELS,
)
CANARY_RECALL_THRESHOLD = Gauge(
    "memory_operator_canary_recall_threshold",
    "The store's canary minRecall: the canary alert fires below it.",
    STORE_LABELS,
)
CANARY_LATENCY_BOUND = Gauge(
    "memory_operator_canary_latency_p95_bound_seconds",
    "The store's canary bound on the p95 search latency: the canary alert fires above it.",
    STORE_LABELS,
)
CANARY_RUNS = Counter(
    "memory_operator_canary_runs_total", "Canary runs seen finished, by result.", [*STORE_LABELS, "result"]
)
_CANARY_GAUGES = {
    "recall": CANARY_RECALL,
    "passed": CANARY_PASSED,
    "time": CANARY_LAST_RUN,
    "min_recall": CANARY_RECALL_THRESHOLD,
    "max_p95_seconds": CANARY_LATENCY_BOUND,
}

# The audit of each store by each policy (`spec.audit`), from the policy's `lastRuns`.
POLICY_LABELS = ["namespace", "store", "policy"]
AUDIT_DUPLICATES = Gauge(
    "memory_operator_audit_duplicates",
    "Duplicates found by the last audit: exact (copies beyond the oldest) or near (pairs).",
    [*POLICY_LABELS, "kind"],
)
AUDIT_STALE = Gauge(
    "memory_operator_audit_stale_memories",
    "Memories not updated for longer than the policy's staleAfter, at the last audit.",
    POLICY_LABELS,
)
AUDIT_MEMORIES = Gauge(
    "memory_operator_audit_memories", "Memories the last audit went through.", POLICY_LABELS
)
AUDIT_DEDUPLICATED = Counter(
    "memory_operator_audit_deduplicated_total",
    "Exact duplicates deleted by audits (dedupe: exact).",
    POLICY_LABELS,
)


def _unset(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def record_canary(namespace: str, store: str, gauges: Mapping[str, float] | None) -> None:
    """The store's canary gauges; all unset when it has no canary (or no run yet), or is gone."""
    for key, gauge in _CANARY_GAUGES.items():
        if gauges is not None and key in gauges:
            gauge.labels(namespace, store).set(gauges[key])
        else:
            _unset(gauge, namespace, store)
    for quantile, key in (("0.5", "p50_seconds"), ("0.95", "p95_seconds")):
        if gauges is not None and key in gauges:
            CANARY_LATENCY.labels(namespace, store, quantile).set(gauges[key])
        else:
            _unset(CANARY_LATENCY, namespace, store, quantile)


def record_audit(namespace: str, store: str, policy: str, figures: Mapping[str, float] | None) -> None:
    """The audit gauges of a store by a policy; unset when its last run had no audit."""
    labels = (namespace, store, policy)
    for kind in ("exact", "near"):
        if figures is not None and kind in figures:
            AUDIT_DUPLICATES.labels(*labels, kind).set(figures[kind])
        else:
            _unset(AUDIT_DUPLICATES, *labels, kind)
    for gauge, key in ((AUDIT_STALE, "stale"), (AUDIT_MEMORIES, "memories")):
        if figures is not None:
            gauge.labels(*labels).set(figures[key])
        else:
            _unset(gauge, *labels)
