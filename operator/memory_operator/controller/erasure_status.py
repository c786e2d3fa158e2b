"""A MemoryErasure's status, the one writer of it. Pure: decided from the erasure, its store, its Job
(and the Job's summary), the store's MemoryBackups and the time.

- Pending until its Job starts (the store's reconcile runs one erasure of a store at a time, after any
  restore), Running while it runs, Completed with what its Job deleted and counted after, or Failed.
- A run that found the store down (`StoreUnavailable`) keeps the erasure Running with the `Erased`
  condition saying so and when it runs again: its Job is deleted after a delay that doubles with each
  attempt (30 s up to 10 minutes), and the store's reconcile runs the next attempt. It never gives up.
- An erasure of an `openmemory` store fails at once: that server keeps each memory's text in its own SQL
  database, which a delete through its API only marks deleted, so no complete erasure is possible.
- Once completed, the backups of the store taken before it that still exist may hold the subject's
  memories: how many, and when the store's retention will have pruned the last of them
  (`backupsAgeOutBy`), follow the store's MemoryBackups.

Statuses, Events and the erasure's summary never carry the subject's id: its kind (`userId`...) only.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from memory_operator.api.common import Condition
from memory_operator.api.erasure import (
    BACKUPS_HOLD_SUBJECT,
    ERASED,
    FLAVOR_NOT_SUPPORTED,
    STORE_UNAVAILABLE,
    ErasureSummary,
    MemoryErasure,
    MemoryErasureStatus,
)
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.backup.retention import parse_duration
from memory_operator.controller import results, status
from memory_operator.controller.decide import Event, backup_phase
from memory_operator.controller.erasures import attempt_of

Body = Mapping[str, Any]
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 600


@dataclass(frozen=True)
class ErasureOutcome:
    status: dict[str, Any] | None
    """The MemoryErasure's status (wire form) to write; `None` to leave it."""
    events: list[Event] = field(default_factory=list)
    retry: bool = False
    """Delete the failed Job: the store's reconcile then runs the next attempt."""
    outcome: str | None = None
    """What to count in the erasures metric: `completed`, `failed` or `retried`."""


def retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt + 1`, after attempt `attempt` found the store down."""
    return int(min(RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), RETRY_MAX_SECONDS))


def erasure_outcome(
    erasure: Body,
    store: Body | None,
    job: Body | None,
    pods: Sequence[Body],
    backups: Sequence[Body],
    now: str,
    ahead: str | None = None,
) -> ErasureOutcome:
    """The erasure's status from its store, its Job and the store's backups. `ahead`: an erasure of the
    same store that runs first."""
    meta = erasure["metadata"]
    if meta.get("deletionTimestamp"):
        return ErasureOutcome(None)
    current = MemoryErasureStatus.model_validate(_valid_or_empty(erasure.get("status")))
    try:
        model = MemoryErasure.model_validate(dict(erasure))
    except ValidationError as error:
        return _failed(
            erasure, current, "InvalidSpec", f"the spec is invalid: {error.errors()[0]['msg']}", now
        )
    if current.phase == "Failed":
        return ErasureOutcome(None)
    if current.phase == "Completed":
        return _with_backups(erasure, model, current, store, backups, now)
    if store is None:
        message = (
            f"MemoryStore {model.spec.store} does not exist in this namespace: the erasure runs once it does"
        )
        return _pending(erasure, current, "StoreNotFound", message, now)
    try:
        store_model = MemoryStore.model_validate(dict(store))
    except ValidationError:
        return _pending(
            erasure, current, "InvalidStore", f"MemoryStore {model.spec.store} has an invalid spec", now
        )
    if store_model.spec.server.flavor != ServerFlavor.builtin:
        flavor = store_model.spec.server.flavor.value
        message = (
            f"MemoryStore {model.spec.store} runs the {flavor} flavor, which keeps "
            "each memory's text in its own SQL database where a delete only marks it deleted: the operator "
            "cannot erase it completely. Move the store's memories to a builtin store, then erase there"
        )
        return _failed(erasure, current, FLAVOR_NOT_SUPPORTED, message, now, store=store)
    if job is None:
        return _waiting(erasure, current, store_model, ahead, now)
    return _following(erasure, model, current, store, job, pods, backups, now)


def _following(
    erasure: Body,
    model: MemoryErasure,
    current: MemoryErasureStatus,
    store: Body,
    job: Body,
    pods: Sequence[Body],
    backups: Sequence[Body],
    now: str,
) -> ErasureOutcome:
    attempt = attempt_of(job)
    started = current.start_time or (job.get("status") or {}).get("startTime") or now
    finished = results.job_finished(job)
    if finished is None:
        message = f"erasing the memories of the {model.spec.subject.kind} subject (attempt {attempt})"
        new = current.model_copy(
            update={"phase": "Running", "start_time": started, "attempts": attempt, "error": None}
        )
        return _write(erasure, new, [_condition(ERASED, False, "Running", message, erasure)], now)
    summary = _summary(pods)
    when = results.finish_time(job, now)
    if finished and summary.succeeded:
        return _completed(erasure, model, current, store, summary, attempt, started, when, backups, now)
    reason = summary.reason or "JobFailed"
    error = (summary.error or "the erasure job failed without a summary; see its pod's logs")[
        : results.MAX_ERROR
    ]
    if reason == STORE_UNAVAILABLE:
        return _retrying(erasure, model, current, attempt, started, when, error, now)
    return _failed(erasure, current, reason, f"erasure job failed ({reason}): {error}", when, store=store)


def _completed(
    erasure: Body,
    model: MemoryErasure,
    current: MemoryErasureStatus,
    store: Body,
    summary: ErasureSummary,
    attempt: int,
    started: str,
    when: str,
    backups: Sequence[Body],
    now: str,
) -> ErasureOutcome:
    kind = model.spec.subject.kind
    remaining = summary.remaining
    verified = remaining == 0
    facts, held = backup_facts(erasure, model, when, store, backups, now)
    new = current.model_copy(
        update={
            "phase": "Completed",
            "deleted": summary.deleted,
            "related_deleted": summary.related_deleted,
            "start_time": started,
            "completion_time": when,
            "verified": verified,
            "remaining": remaining,
            "attempts": attempt,
            "error": None,
            **facts,
        }
    )
    done = (
        f"{summary.deleted} memories of the {kind} subject deleted, and {summary.related_deleted} "
        "related records"
    )
    if verified:
        erased = _condition(ERASED, True, "Verified", f"{done}; a count afterwards found none left", erasure)
    else:
        erased = _condition(
            ERASED,
            True,
            "NotVerified",
            f"{done}; {remaining if remaining is not None else 'an unknown number of'} memories of the "
            "subject were counted afterwards (written while it ran): erase them with another MemoryErasure",
            erasure,
        )
    outcome = _write(erasure, new, [erased, held], now)
    record = _record(model)
    events = [
        Event(erasure, "MemoriesErased", f"{done}{record}", warning=not verified),
        Event(store, "MemoriesErased", f"MemoryErasure {model.metadata.name}: {done}{record}", warning=False),
    ]
    return ErasureOutcome(outcome.status, events, outcome="completed")


def _retrying(
    erasure: Body,
    model: MemoryErasure,
    current: MemoryErasureStatus,
    attempt: int,
    started: str,
    failed_at: str,
    error: str,
    now: str,
) -> ErasureOutcome:
    """The store was down: the erasure stays Running, its next attempt after a growing delay."""
    again = status.parse_rfc3339(failed_at) + datetime.timedelta(seconds=retry_delay(attempt))
    message = (
        f"attempt {attempt} found the store unavailable ({error}); attempt {attempt + 1} starts at "
        f"{status.rfc3339(again)}"
    )
    new = current.model_copy(
        update={"phase": "Running", "start_time": started, "attempts": attempt, "error": error}
    )
    outcome = _write(erasure, new, [_condition(ERASED, False, STORE_UNAVAILABLE, message, erasure)], now)
    previous = status.find(current.conditions, ERASED)
    recorded = current.attempts == attempt and previous is not None and previous.reason == STORE_UNAVAILABLE
    events = [] if recorded else [Event(erasure, "ErasureRetrying", message)]
    # The attempt's failure is recorded (by an earlier write) before its Job goes.
    retry = recorded and status.parse_rfc3339(now) >= again
    return ErasureOutcome(outcome.status, events, retry=retry, outcome=None if recorded else "retried")


def _waiting(
    erasure: Body, current: MemoryErasureStatus, store: MemoryStore, ahead: str | None, now: str
) -> ErasureOutcome:
    if current.attempts:
        # Between two attempts: the failed Job is gone, the next one is on its way.
        return ErasureOutcome(None)
    source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
    restored = (store.status.restored_from if store.status else None) == (source.name if source else None)
    if source is not None and not restored:
        message = (
            f"waiting for the store's restore of MemoryBackup {source.name}, which re-applies this erasure; "
            "the erasure runs after it"
        )
        return _pending(erasure, current, "WaitingForRestore", message, now)
    if ahead is not None:
        return _pending(
            erasure, current, "Queued", f"waiting for MemoryErasure {ahead} of the store to finish", now
        )
    return _pending(erasure, current, "Pending", "the erasure job starts at the store's next reconcile", now)


def _pending(
    erasure: Body, current: MemoryErasureStatus, reason: str, message: str, now: str
) -> ErasureOutcome:
    new = current.model_copy(update={"phase": "Pending"})
    return _write(erasure, new, [_condition(ERASED, False, reason, message, erasure)], now)


def _failed(
    erasure: Body,
    current: MemoryErasureStatus,
    reason: str,
    message: str,
    when: str,
    store: Body | None = None,
) -> ErasureOutcome:
    new = current.model_copy(update={"phase": "Failed", "error": message, "completion_time": when})
    outcome = _write(erasure, new, [_condition(ERASED, False, reason, message, erasure)], when)
    name = erasure["metadata"]["name"]
    events = [Event(erasure, "ErasureFailed", message)]
    if store is not None:
        events.append(Event(store, "ErasureFailed", f"MemoryErasure {name} failed: {message}"))
    return ErasureOutcome(outcome.status, events, outcome="failed")


# --- backups that may still hold the subject ------------------------------------------------------


def _with_backups(
    erasure: Body,
    model: MemoryErasure,
    current: MemoryErasureStatus,
    store: Body | None,
    backups: Sequence[Body],
    now: str,
) -> ErasureOutcome:
    """A completed erasure's backup facts, brought up to date."""
    facts, held = backup_facts(erasure, model, current.completion_time, store, backups, now)
    return _write(erasure, current.model_copy(update=facts), [held], now)


def backup_facts(
    erasure: Body,
    model: MemoryErasure,
    completed: str | None,
    store: Body | None,
    backups: Sequence[Body],
    now: str,
) -> tuple[dict[str, Any], Condition]:
    """How many of the store's backups may hold the subject, until when, and the condition saying so."""
    holding = holding_backups(model.spec.store, backups, completed)
    newer = newer_completed(model.spec.store, backups, holding)
    until = age_out_by(_store_model(store), holding, newer, status.parse_rfc3339(now))
    facts = {"backups_holding_subject": len(holding), "backups_age_out_by": until}
    if not holding:
        message = "no backup of the store taken before the erasure is left"
        return facts, _condition(BACKUPS_HOLD_SUBJECT, False, "NoBackups", message, erasure)
    listed = ", ".join(b["metadata"]["name"] for b in holding)
    message = (
        f"{len(holding)} backup(s) taken before the erasure may hold the subject's memories ({listed}); "
    )
    if until is not None:
        message += f"the store's retention will have pruned the last of them by {until}"
    elif store is None:
        message += "the store is gone, and with it the retention that would prune them: delete them"
    else:
        message += (
            "the store takes no scheduled backups, so retention never prunes them: delete them to be rid "
            "of the subject's memories"
        )
    message += ". Restoring one re-applies this erasure"
    return facts, _condition(BACKUPS_HOLD_SUBJECT, True, "BackupsKept", message, erasure)


def taken_time(backup: Body) -> datetime.datetime | None:
    """When the backup was taken: its start, else its creation."""
    value = (backup.get("status") or {}).get("startTime") or backup["metadata"].get("creationTimestamp")
    return status.parse_rfc3339(value) if value else None


def pruning_time(backup: Body) -> datetime.datetime | None:
    """The time retention ages the backup by: when it completed (its manifest's time)."""
    value = (backup.get("status") or {}).get("stopTime")
    return status.parse_rfc3339(value) if value else taken_time(backup)


def _of_store(store: str, backups: Sequence[Body]) -> list[Body]:
    mine = [
        b
        for b in backups
        if ((b.get("spec") or {}).get("storeRef") or {}).get("name") == store
        and not b["metadata"].get("deletionTimestamp")
        and backup_phase(b) != "Failed"
    ]
    return sorted(mine, key=lambda b: taken_time(b) or datetime.datetime.min.replace(tzinfo=datetime.UTC))


def holding_backups(store: str, backups: Sequence[Body], completed: str | None) -> list[Body]:
    """The store's backups (not failed) taken before the erasure completed, oldest first."""
    if completed is None:
        return []
    end = status.parse_rfc3339(completed)
    return [b for b in _of_store(store, backups) if (taken_time(b) or end) < end]


def newer_completed(store: str, backups: Sequence[Body], holding: Sequence[Body]) -> int:
    """Completed backups of the store taken after the newest of `holding`."""
    if not holding:
        return 0
    names_ = {b["metadata"]["name"] for b in holding}
    return sum(
        1
        for b in _of_store(store, backups)
        if b["metadata"]["name"] not in names_ and backup_phase(b) == "Completed"
    )


def age_out_by(
    store: MemoryStore | None, holding: Sequence[Body], newer: int, now: datetime.datetime
) -> str | None:
    """When the store's retention will have pruned the newest backup of `holding` (RFC 3339).

    The backup job prunes after each backup it takes: a backup goes at the first scheduled backup that
    finds `maxCount` completed backups newer than it, or finds it older than `maxAge`. None without a
    schedule to take that backup (no `spec.backup`, or `suspend`), or without anything held."""
    if not holding or store is None or store.spec.backup is None or store.spec.backup.suspend:
        return None
    spec = store.spec.backup
    last = holding[-1]
    # Ticks of the schedule from now on; the count rule needs this many more backups.
    needed = max(spec.retention.max_count - newer, 1)
    ticks = croniter(spec.schedule, now)
    by_count: datetime.datetime = now
    for _ in range(needed):
        by_count = ticks.get_next(datetime.datetime)
    candidates = [by_count]
    taken = pruning_time(last)
    if spec.retention.max_age and taken is not None:
        threshold = max(now, taken + parse_duration(spec.retention.max_age))
        candidates.append(croniter(spec.schedule, threshold).get_next(datetime.datetime))
    return status.rfc3339(min(candidates))


# --- plumbing -------------------------------------------------------------------------------------


def _record(model: MemoryErasure) -> str:
    """What the request said about itself, for the Events (no subject id)."""
    parts = []
    if model.spec.reference:
        parts.append(f"reference {model.spec.reference}")
    if model.spec.reason:
        parts.append(f"reason: {model.spec.reason}")
    return f" ({'; '.join(parts)})" if parts else ""


def _condition(type_: str, ok: bool | None, reason: str, message: str, erasure: Body) -> Condition:
    return status.condition(type_, ok, reason, message, erasure["metadata"].get("generation"))


def _write(
    erasure: Body, new: MemoryErasureStatus, conditions: Sequence[Condition], now: str
) -> ErasureOutcome:
    """`new` with `conditions` set (transition times kept), as a write when its meaning changed."""
    updated = new.model_copy(
        update={
            "conditions": status.set_conditions(new.conditions, conditions, now),
            "observed_generation": erasure["metadata"].get("generation"),
        }
    )
    wire = updated.wire()
    if not status.changed(erasure.get("status") or {}, wire):
        return ErasureOutcome(None)
    return ErasureOutcome(wire)


def _summary(pods: Sequence[Body]) -> ErasureSummary:
    message = results.termination_message(pods) or {}
    try:
        return ErasureSummary.model_validate(message)
    except ValidationError:
        return ErasureSummary(error=f"the erasure job left an unreadable summary: {message!r}"[:1024])


def _store_model(store: Body | None) -> MemoryStore | None:
    if store is None:
        return None
    try:
        return MemoryStore.model_validate(dict(store))
    except ValidationError:
        return None


def _valid_or_empty(raw: Any) -> dict[str, Any]:
    try:
        MemoryErasureStatus.model_validate(raw or {})
    except ValidationError:
        return {}
    return dict(raw or {})
