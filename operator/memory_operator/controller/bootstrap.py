"""Restore before serving: what `spec.bootstrap.fromBackup` asks of a reconcile, decided from what exists.

A restore runs once: the server is held at zero replicas until the restore Job has succeeded, and the
store remembers the backup in `status.restoredFrom`, so that deleting the finished Job never restores
again on top of live data. A failed restore keeps the server held; a new value of the store's
`memory-operator.io/retry-restore` annotation deletes the failed Job and runs a new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memory_operator import labels
from memory_operator.api.common import Condition
from memory_operator.api.store import MemoryStore, Phase
from memory_operator.controller import plan, results
from memory_operator.controller.status import Held, condition

CONDITION = "Restored"


@dataclass(frozen=True)
class Bootstrap:
    """The decision for one reconcile."""

    run_job: bool = False
    """Keep the restore Job among the desired children."""
    held: Held | None = None
    """Why the server runs no replicas yet (and the phase that says so); `None` lets it serve."""
    restored_from: str | None = None
    """What `status.restoredFrom` is after this reconcile."""
    condition: Condition | None = None
    """The `Restored` condition; `None` for a store without `bootstrap.fromBackup`."""
    warning: bool = False
    """Whether the condition's message deserves a Warning Event."""
    attempt: str | None = None
    """The `retry-restore` value the restore Job answers."""
    delete: list[plan.ObjectRef] = field(default_factory=list)
    """The failed restore Job, deleted so that a new one can run."""

    @property
    def just_restored(self) -> bool:
        return self.condition is not None and self.condition.reason == "Restored" and self.held is None


def _held(
    phase: Phase,
    reason: str,
    message: str,
    generation: int | None,
    *,
    warning: bool = False,
    run: bool = False,
    attempt: str | None = None,
) -> Bootstrap:
    return Bootstrap(
        run_job=run,
        held=Held(phase, reason, message),
        condition=condition(CONDITION, False, reason, message, generation),
        warning=warning,
        attempt=attempt if run else None,
    )


def decide(
    store: MemoryStore,
    *,
    restored_from: str | None,
    backup: Mapping[str, Any] | None,
    job: Mapping[str, Any] | None,
    job_error: str | None,
    generation: int | None,
    retry: str | None = None,
) -> Bootstrap:
    """What to do about the restore, from the store's status, its MemoryBackup and its restore Job.

    `retry` is the store's `retry-restore` annotation: a value the failed Job was not made for runs
    the restore again."""
    source = store.spec.bootstrap.from_backup if store.spec.bootstrap else None
    if source is None:
        return Bootstrap(restored_from=restored_from)
    name = source.name
    finished = results.job_finished(job) if job is not None else None
    if restored_from == name or finished is True:
        return Bootstrap(
            restored_from=name,
            condition=condition(
                CONDITION, True, "Restored", f"restored from MemoryBackup {name}", generation
            ),
        )
    if job is not None and finished is False:
        return _failed(job, name, job_error, generation, retry)
    if job is not None:
        message = f"restoring MemoryBackup {name}; the server starts once the restore Job succeeds"
        attempt = (job["metadata"].get("annotations") or {}).get(labels.RESTORE_ATTEMPT)
        return _held("Provisioning", "RestoreRunning", message, generation, run=True, attempt=attempt)
    if backup is None:
        return _held(
            "Failed",
            "BackupNotFound",
            f"MemoryBackup {name} (spec.bootstrap.fromBackup) does not exist in this namespace",
            generation,
            warning=True,
        )
    backup_phase = (backup.get("status") or {}).get("phase") or "Pending"
    if backup_phase == "Completed":
        message = f"restoring MemoryBackup {name}; the server starts once the restore Job succeeds"
        return _held("Provisioning", "RestoreRunning", message, generation, run=True, attempt=retry)
    if backup_phase == "Failed":
        return _held(
            "Failed",
            "BackupNotCompleted",
            f"MemoryBackup {name} failed; a store can be restored from a Completed backup only",
            generation,
            warning=True,
        )
    return _held(
        "Provisioning",
        "WaitingForBackup",
        f"MemoryBackup {name} is {backup_phase}; the restore starts when it is Completed",
        generation,
    )


def _failed(
    job: Mapping[str, Any], name: str, job_error: str | None, generation: int | None, retry: str | None
) -> Bootstrap:
    """A failed restore Job: the server stays held; a new `retry-restore` value runs the restore again."""
    job_name = job["metadata"]["name"]
    attempt = (job["metadata"].get("annotations") or {}).get(labels.RESTORE_ATTEMPT)
    if retry and retry != attempt:
        message = f"restore Job {job_name} failed; running it again ({labels.RETRY_RESTORE}: {retry})"
        held = _held("Provisioning", "RestoreRetrying", message, generation)
        ref = plan.ObjectRef("batch/v1", "Job", str(job["metadata"].get("namespace", "")), job_name)
        return Bootstrap(held=held.held, condition=held.condition, delete=[ref])
    why = job_error or "it left no summary; see its pod's logs"
    return _held(
        "Failed",
        "RestoreFailed",
        f"restore Job {job_name} from MemoryBackup {name} failed: {why}; the server stays stopped "
        f"(set the store's annotation {labels.RETRY_RESTORE} to a new value to retry)",
        generation,
        warning=True,
    )
