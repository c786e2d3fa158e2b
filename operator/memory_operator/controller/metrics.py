"""Prometheus metrics of the operator, served on their own port."""

from __future__ import annotations

import contextlib

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
