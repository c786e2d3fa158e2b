"""Restore before serving: what `spec.bootstrap.fromBackup` asks of a reconcile, decided from what exists.

A restore runs once: the server is held at zero replicas until the restore Job has succeeded, and the
store remembers the backup in `status.restoredFrom`, so that deleting the finished Job never restores
again on top of live data. A failed restore keeps the server held; deleting the failed Job retries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_operator.api.store import MemoryStore
from memory_operator.controller import results
from memory_operator.controller.status import Condition, Held, condition
from memory_operator.render.meta import RESTORE_LABEL

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

    @property
    def just_restored(self) -> bool:
        return self.condition is not None and self.condition["reason"] == "Restored" and self.held is None


def _held(
    phase: str, reason: str, message: str, generation: int | None, *, warning: bool = False, run: bool = False
) -> Bootstrap:
    return Bootstrap(
        run_job=run,
        held=Held(phase, reason, message),
        condition=condition(CONDITION, False, reason, message, generation),
        warning=warning,
    )


def decide(
    store: MemoryStore,
    *,
    restored_from: str | None,
    backup: Mapping[str, Any] | None,
    job: Mapping[str, Any] | None,
    job_error: str | None,
    generation: int | None,
) -> Bootstrap:
    """What to do about the restore, from the store's status, its MemoryBackup and its restore Job."""
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
        job_name = job["metadata"]["name"]
        why = job_error or "it left no summary; see its pod's logs"
        return _held(
            "Failed",
            "RestoreFailed",
            f"restore Job {job_name} from MemoryBackup {name} failed: {why}; the server stays stopped "
            f"(delete the Job to retry)",
            generation,
            warning=True,
        )
    if job is not None:
        message = f"restoring MemoryBackup {name}; the server starts once the restore Job succeeds"
        return _held("Provisioning", "RestoreRunning", message, generation, run=True)
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
        return _held("Provisioning", "RestoreRunning", message, generation, run=True)
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


def is_restore_job(manifest: Mapping[str, Any]) -> bool:
    return manifest["kind"] == "Job" and RESTORE_LABEL in (manifest["metadata"].get("labels") or {})


def shape(manifests: Sequence[Mapping[str, Any]], decision: Bootstrap) -> list[dict[str, Any]]:
    """The rendered children as the decision wants them: the restore Job or not, the server held or not."""
    result: list[dict[str, Any]] = []
    for manifest in manifests:
        if is_restore_job(manifest) and not decision.run_job:
            continue
        if manifest["kind"] == "Deployment" and decision.held is not None:
            manifest = {**manifest, "spec": {**manifest["spec"], "replicas": 0}}
        result.append(dict(manifest))
    return result
