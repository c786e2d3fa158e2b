"""MemoryErasures in a store's reconcile: which erasure's Job runs now, what a restore re-applies, and the
store's `ErasuresReapplied` condition. Pure: decided from the store, its MemoryErasures, MemoryBackups
and Jobs.

- One erasure Job at a time per store, the oldest unfinished erasure first, and none while the store
  restores a backup (the restore re-applies them) or is of the `openmemory` flavor (its erasures are
  refused). A Job keeps the attempt it was made for; the next attempt (after the store was down) is
  the erasure's recorded `attempts` plus one.
- A restore re-applies, before the server starts, every MemoryErasure of the namespace that targets the
  backup's store or the restored store and did not fail, unless it completed before the backup was
  taken (the backup cannot hold what was erased before it, and a subject's later memories are not
  erased again). An erasure that came after the restore Job started is not in it: the condition says
  which, so that a person erases it from the new store.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator import labels
from memory_operator.api.common import Condition
from memory_operator.api.erasure import FINISHED, ErasureEntry, MemoryErasure
from memory_operator.api.restore import RestoreSummary
from memory_operator.api.store import MemoryStore, MemoryStoreStatus, ServerFlavor
from memory_operator.controller import plan, results, status
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import names

CONDITION = "ErasuresReapplied"

Body = Mapping[str, Any]


@dataclass(frozen=True)
class Erasures:
    """The erasure part of one store reconcile."""

    run: list[tuple[ErasureEntry, int]] = field(default_factory=list)
    """Erasures whose Jobs exist or start now, each with its attempt."""
    delete: list[plan.ObjectRef] = field(default_factory=list)
    """Jobs of deleted erasures that a new erasure of the same name replaces."""
    reapply: list[ErasureEntry] = field(default_factory=list)
    """What the restore Job re-applies (when the restore runs)."""
    secret: bool = False
    """The erasures Secret exists: keep rendering it (emptied when nothing runs)."""
    condition: Condition | None = None
    """`ErasuresReapplied`, for a store restored from a backup."""
    warning: str | None = None
    """A message worth a Warning Event: erasures the restore did not re-apply."""


def parsed(body: Body) -> MemoryErasure | None:
    try:
        return MemoryErasure.model_validate(dict(body))
    except ValidationError:
        return None


def phase(body: Body) -> str:
    return str((body.get("status") or {}).get("phase") or "Pending")


def of_store(erasures: Sequence[Body], store: str) -> list[MemoryErasure]:
    """The valid, live MemoryErasures of `store`, oldest first."""
    # Erasures are kept for good: only those of the store are parsed.
    mine = [
        e
        for body in erasures
        if (body.get("spec") or {}).get("store") == store
        and not body["metadata"].get("deletionTimestamp")
        and (e := parsed(body)) is not None
    ]
    return sorted(mine, key=lambda e: (e.metadata.creation_timestamp or "", e.metadata.name))


def unfinished(erasure: MemoryErasure) -> bool:
    return (erasure.status.phase if erasure.status else "Pending") not in FINISHED


def entry(erasure: MemoryErasure) -> ErasureEntry:
    return ErasureEntry(name=erasure.metadata.name, subject=erasure.spec.subject)


def attempt_of(job: Body) -> int:
    """The attempt an erasure Job was made for (1 when it does not say)."""
    value = (job["metadata"].get("annotations") or {}).get(labels.ERASURE_ATTEMPT)
    return int(value) if value and str(value).isdigit() else 1


def jobs_by_erasure(snap: Snapshot) -> dict[str, Body]:
    return {
        str(labels_[labels.ERASURE]): job
        for job in snap.of_kind("Job")
        if labels.ERASURE in (labels_ := job["metadata"].get("labels") or {})
    }


def owner_uid(job: Body) -> str | None:
    """The uid of the MemoryErasure that owns the Job."""
    refs = job["metadata"].get("ownerReferences") or []
    return next((str(r.get("uid")) for r in refs if r.get("kind") == "MemoryErasure"), None)


def job_of(erasure: MemoryErasure, job: Body | None) -> Body | None:
    """`job` if it is this erasure's (not a Job left by an erasure of the same name, deleted since)."""
    return job if job is not None and owner_uid(job) == erasure.metadata.uid else None


def runs(store: MemoryStore, snap: Snapshot) -> tuple[list[tuple[ErasureEntry, int]], list[plan.ObjectRef]]:
    """The erasure whose Job exists or starts now (one at a time, the oldest unfinished first), and the
    Jobs left by erased erasures of the same names, to delete first."""
    mine = of_store(snap.erasures, store.metadata.name)
    jobs = jobs_by_erasure(snap)
    stale = [
        plan.ObjectRef.of(jobs[e.metadata.name])
        for e in mine
        if e.metadata.name in jobs and job_of(e, jobs[e.metadata.name]) is None
    ]
    waiting = [e for e in mine if unfinished(e)]
    started = [e for e in waiting if job_of(e, jobs.get(e.metadata.name)) is not None]
    chosen = started or [e for e in waiting[:1] if e.metadata.name not in jobs]
    result = []
    for erasure in chosen:
        job = job_of(erasure, jobs.get(erasure.metadata.name))
        recorded = (erasure.status.attempts if erasure.status else None) or 0
        result.append((entry(erasure), attempt_of(job) if job is not None else recorded + 1))
    return result, stale


def restore_source(store: MemoryStore, snap: Snapshot) -> tuple[str | None, Body | None]:
    """The store the backup to restore was taken of, and its MemoryBackup."""
    source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
    backup = next((b for b in snap.backups if source and b["metadata"]["name"] == source.name), None)
    if backup is None:
        return None, None
    return ((backup.get("spec") or {}).get("storeRef") or {}).get("name"), backup


def taken_at(backup: Body) -> str | None:
    """When the backup was taken: its start (what it can hold was there then)."""
    return (backup.get("status") or {}).get("startTime") or backup["metadata"].get("creationTimestamp")


def due(store: MemoryStore, snap: Snapshot) -> list[MemoryErasure]:
    """The erasures a restore into the store re-applies (see the module's docstring), oldest first."""
    source, backup = restore_source(store, snap)
    taken = _time(taken_at(backup)) if backup is not None else None
    found = []
    for target in sorted({store.metadata.name, *([source] if source else [])}):
        for erasure in of_store(snap.erasures, target):
            seen = erasure.status
            if seen is not None and seen.phase == "Failed":
                continue
            completed = _time(seen.completion_time) if seen and seen.phase == "Completed" else None
            if completed is not None and taken is not None and completed <= taken:
                continue
            found.append(erasure)
    return sorted(found, key=lambda e: (e.metadata.creation_timestamp or "", e.metadata.name))


def decide(
    store: MemoryStore, snap: Snapshot, previous: MemoryStoreStatus, *, restoring: bool, restore_job: bool
) -> Erasures:
    """`restoring`: the store restores a backup (its erasures wait); `restore_job`: its Job runs now."""
    secret = snap.child("Secret", names.erasures_secret_name(store)) is not None
    builtin = store.spec.server.flavor == ServerFlavor.builtin
    run, stale = runs(store, snap) if builtin and not restoring else ([], [])
    reapply = [entry(e) for e in due(store, snap)] if builtin and restore_job else []
    condition, warning = reapplied(store, snap, previous, len(reapply) if restore_job else None)
    return Erasures(
        run=run, delete=stale, reapply=reapply, secret=secret, condition=condition, warning=warning
    )


def reapplied(
    store: MemoryStore, snap: Snapshot, previous: MemoryStoreStatus, reapplying: int | None
) -> tuple[Condition | None, str | None]:
    """`ErasuresReapplied` of a store restored from a backup, and a warning for erasures left out."""
    if store.spec.bootstrap is None or store.spec.bootstrap.from_backup is None:
        return None, None
    generation = store.metadata.generation
    job_name = names.restore_job_name(store)
    job = snap.child("Job", job_name)
    finished = results.job_finished(job) if job is not None else None
    if finished is None and reapplying is not None:
        message = f"the restore re-applies {reapplying} MemoryErasure(s) before the server starts"
        return status.condition(CONDITION, None, "Reapplying", message, generation), None
    if job is None or finished is not True:
        # No restore, a failed one (the `Restored` condition says why), or its Job deleted since.
        return status.find(previous.conditions, CONDITION), None
    summary = _summary(snap.job_pods.get(job_name, []))
    if summary is None:
        return status.find(previous.conditions, CONDITION), None
    source, _ = restore_source(store, snap)
    # Erasures of the restored store itself run on it by their own Jobs, and cover their subjects.
    own = [
        e
        for e in of_store(snap.erasures, store.metadata.name)
        if (e.status is None or e.status.phase != "Failed")
    ]
    covered = {(e.spec.subject.kind, e.spec.subject.value) for e in own}
    wanted = [
        e
        for e in due(store, snap)
        if e.spec.store != store.metadata.name and (e.spec.subject.kind, e.spec.subject.value) not in covered
    ]
    missed = missed_by(summary, job, wanted)
    if missed:
        message = (
            f"MemoryErasure(s) {', '.join(missed)} of store {source} came after the restore started and "
            f"were not re-applied: erase their subjects from this store with MemoryErasures of store "
            f"{store.metadata.name}"
        )
        return status.condition(CONDITION, False, "ErasuresMissed", message, generation), message
    message = (
        f"the restore re-applied {summary.erasures_reapplied} MemoryErasure(s) before the server started "
        f"({summary.erasures_deleted} memories deleted)"
    )
    return status.condition(CONDITION, True, "Reapplied", message, generation), None


def missed_by(summary: RestoreSummary, job: Body, wanted: Sequence[MemoryErasure]) -> list[str]:
    """Those of `wanted` (erasures of the backup's store) the restore did not re-apply. The summary names
    them all unless it was cut: then those made after the restore Job started are the ones it cannot
    have known."""
    if len(summary.erasures) >= summary.erasures_reapplied:
        applied = set(summary.erasures)
        return [e.metadata.name for e in wanted if e.metadata.name not in applied]
    started = _time((job.get("status") or {}).get("startTime") or job["metadata"].get("creationTimestamp"))
    return [
        e.metadata.name
        for e in wanted
        if started is None or (_time(e.metadata.creation_timestamp) or started) > started
    ]


def _summary(pods: Sequence[Body]) -> RestoreSummary | None:
    message = results.termination_message(pods)
    if message is None:
        return None
    try:
        return RestoreSummary.model_validate(message)
    except ValidationError:
        return None


def _time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return status.parse_rfc3339(value)
    except ValueError:
        return None
