"""A MemoryBackup's status, the one writer of it: Pending until its Job starts, Running, then the Job's
summary (Completed or Failed). Which backup's Job runs, one at a time per store, is the store's
reconcile's to decide; this follows the Job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator.api.store import MemoryStore
from memory_operator.controller import results, status
from memory_operator.controller.decide import FINISHED, Event, backup_phase
from memory_operator.render import names

# A backup may come before its store (both applied at once, by Argo CD say): it waits this long for the
# store to appear before it fails.
STORE_GRACE_SECONDS = 300


@dataclass(frozen=True)
class BackupOutcome:
    status: dict[str, Any] | None
    """The MemoryBackup's status (wire form) to write; `None` to leave it."""
    events: list[Event] = field(default_factory=list)
    completed_at: str | None = None
    """When it completed, for the last-success metric."""


def backup_outcome(
    backup: Mapping[str, Any],
    store: Mapping[str, Any] | None,
    job: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    now: str,
) -> BackupOutcome:
    """The backup's status from its store and its Job; a finished backup never changes again."""
    meta = backup["metadata"]
    current = dict(backup.get("status") or {})
    if backup_phase(backup) in FINISHED or meta.get("deletionTimestamp"):
        return BackupOutcome(None)
    generation = meta.get("generation")
    problem = store_problem(backup, store)
    if store is None and _age_seconds(meta, now) < STORE_GRACE_SECONDS:
        new = {"phase": "Pending", "observedGeneration": generation}
        return BackupOutcome(None if _same(current, new) else new)
    if problem is not None:
        new = {"phase": "Failed", "error": problem, "stopTime": now, "observedGeneration": generation}
        return BackupOutcome(new, [Event(backup, "BackupFailed", problem)])
    if job is None:
        new = {"phase": "Pending", "observedGeneration": generation}
        return BackupOutcome(None if _same(current, new) else new)
    finished = results.job_finished(job)
    started = (job.get("status") or {}).get("startTime") or current.get("startTime") or now
    if finished is None:
        new = {"phase": "Running", "startTime": started, "observedGeneration": generation}
        return BackupOutcome(None if _same(current, new) else new)
    when = results.finish_time(job, now)
    new = results.backup_result(results.termination_message(pods), finished, when, started)
    new["observedGeneration"] = generation
    if new["phase"] == "Completed":
        return BackupOutcome(new, completed_at=when)
    message = f"backup {meta['name']} failed: {new.get('error')}"
    return BackupOutcome(new, [Event(backup, "BackupFailed", message)])


def pruned_backups(backup: Mapping[str, Any], backups: Sequence[Mapping[str, Any]]) -> list[str]:
    """MemoryBackups whose files this completed backup's retention removed: of the same store (a name
    alone may be another store's), never itself."""
    names_ = set((backup.get("status") or {}).get("pruned") or [])
    if backup_phase(backup) != "Completed" or not names_:
        return []
    store = ((backup.get("spec") or {}).get("storeRef") or {}).get("name")
    return sorted(
        b["metadata"]["name"]
        for b in backups
        if b["metadata"]["name"] in names_
        and b["metadata"]["name"] != backup["metadata"]["name"]
        and ((b.get("spec") or {}).get("storeRef") or {}).get("name") == store
        and not b["metadata"].get("deletionTimestamp")
    )


def store_problem(backup: Mapping[str, Any], store: Mapping[str, Any] | None) -> str | None:
    """Why the backup's store cannot take it, if it cannot."""
    namespace = backup["metadata"]["namespace"]
    name = ((backup.get("spec") or {}).get("storeRef") or {}).get("name")
    if store is None:
        return f"MemoryStore {name} does not exist in namespace {namespace}"
    try:
        model = MemoryStore.model_validate(store)
    except ValidationError:
        return f"MemoryStore {name} has an invalid spec"
    if model.spec.backup is None:
        return f"MemoryStore {name} has no spec.backup: set a destination first"
    return None


def job_of(backup: Mapping[str, Any], children: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    job_name = names.backup_job_name(backup["metadata"]["name"])
    return next((c for c in children if c["kind"] == "Job" and c["metadata"]["name"] == job_name), None)


def is_waiting(backup: Mapping[str, Any]) -> bool:
    """Whether the backup has yet to finish (it is checked again until it does)."""
    return backup_phase(backup) not in FINISHED


def _age_seconds(meta: Mapping[str, Any], now: str) -> float:
    created = meta.get("creationTimestamp")
    if not created:
        return float("inf")
    return (status.parse_rfc3339(now) - status.parse_rfc3339(str(created))).total_seconds()


def _same(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(current.get(key) == value for key, value in new.items())
