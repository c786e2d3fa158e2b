"""Results of finished Jobs: the JSON termination message their pod writes, turned into status."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


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
    message = message or {}
    error = message.get("error")
    if not succeeded and not error:
        error = "the expiration job failed without a summary; see its pod's logs"
    run: dict[str, Any] = {
        "store": store,
        "time": time,
        "succeeded": bool(succeeded and not error),
        "dryRun": bool(message.get("dryRun", False)),
        "matched": int(message.get("matched") or 0),
        "deleted": int(message.get("deleted") or 0),
        "rules": [
            {
                "name": str(rule.get("name", "")),
                "matched": int(rule.get("matched") or 0),
                "deleted": int(rule.get("deleted") or 0),
            }
            for rule in message.get("rules") or []
            if isinstance(rule, Mapping)
        ],
    }
    if message.get("durationSeconds") is not None:
        run["durationSeconds"] = float(message["durationSeconds"])
    if error:
        run["error"] = str(error)[:4096]
    return run


def upsert_run(runs: Iterable[Mapping[str, Any]], run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`lastRuns` with the run of `run["store"]` replaced."""
    others = [dict(r) for r in runs if r.get("store") != run["store"]]
    return sorted([*others, dict(run)], key=lambda r: str(r["store"]))


def backup_result(
    message: Mapping[str, Any] | None, succeeded: bool, time: str, started: str | None
) -> dict[str, Any]:
    """A MemoryBackup status from a backup job's summary."""
    message = message or {}
    error = message.get("error")
    if not succeeded and not error:
        error = "the backup job failed without a summary; see its pod's logs"
    status: dict[str, Any] = {"phase": "Failed" if error or not succeeded else "Completed", "stopTime": time}
    if started:
        status["startTime"] = started
    for key in ("location", "sizeBytes", "snapshots"):
        if message.get(key) is not None:
            status[key] = message[key]
    if error:
        status["error"] = str(error)[:4096]
    return status
