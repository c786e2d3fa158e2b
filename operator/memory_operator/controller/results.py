"""Results of finished Jobs: the JSON termination message their pod writes, turned into status."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from memory_operator.api.backup import MemoryBackupStatus
from memory_operator.api.jobs import ExpirationSummary

# Status messages stay short: the whole story is in the job's log.
MAX_ERROR = 4096


def job_finished(job: Mapping[str, Any]) -> bool | None:
    """`True` when the Job completed, `False` when it failed, `None` while it runs."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return True
        if cond.get("type") == "Failed":
            return False
    return None


def finish_time(job: Mapping[str, Any], default: str) -> str:
    status = job.get("status") or {}
    if status.get("completionTime"):
        return str(status["completionTime"])
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("lastTransitionTime"):
            return str(cond["lastTransitionTime"])
    return default


def termination_message(pods: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The JSON termination message of the newest terminated container among a Job's pods."""
    found: list[tuple[str, dict[str, Any]]] = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated") or {}
            raw = terminated.get("message")
            if not raw:
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                value = {"error": raw.strip()[:1024]}
            if isinstance(value, dict):
                found.append((str(terminated.get("finishedAt") or ""), value))
    if not found:
        return None
    return max(found, key=lambda item: item[0])[1]


def expiration_run(
    store: str, message: Mapping[str, Any] | None, succeeded: bool, time: str
) -> dict[str, Any]:
    """A policy's `lastRuns` entry (StoreRun, wire form) from an expiration job's summary."""
    try:
        summary = ExpirationSummary.model_validate(dict(message or {}))
    except ValidationError:
        summary = ExpirationSummary(
            error=f"the expiration job left an unreadable summary: {message!r}"[:1024]
        )
    if not succeeded and summary.error is None:
        summary.error = "the expiration job failed without a summary; see its pod's logs"
    run = summary.to_store_run(time)
    # The Job's labels name the store, whatever the summary says.
    run.store = store
    if run.error is not None:
        run.error = run.error[:MAX_ERROR]
    return run.wire()


def upsert_run(runs: Iterable[Mapping[str, Any]], run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`lastRuns` with the run of `run["store"]` replaced."""
    others = [dict(r) for r in runs if r.get("store") != run["store"]]
    return sorted([*others, dict(run)], key=lambda r: str(r["store"]))


def backup_result(
    message: Mapping[str, Any] | None, succeeded: bool, time: str, started: str | None
) -> dict[str, Any]:
    """A MemoryBackup status (wire form) from a backup job's summary, which has that very shape."""
    try:
        status = MemoryBackupStatus.model_validate(dict(message or {}))
    except ValidationError:
        status = MemoryBackupStatus(error=f"the backup job left an unreadable summary: {message!r}"[:1024])
    if not succeeded and status.error is None:
        status.error = "the backup job failed without a summary; see its pod's logs"
    # The Job's outcome decides the phase: a summary cannot make a failed Job succeed, nor the reverse.
    status.phase = "Completed" if succeeded and status.error is None else "Failed"
    status.stop_time = status.stop_time or time
    status.start_time = status.start_time or started
    status.conditions = []
    if status.error is not None:
        status.error = status.error[:MAX_ERROR]
    wire = status.wire()
    wire.pop("conditions", None)
    if not wire.get("pruned"):
        wire.pop("pruned", None)
    return wire
