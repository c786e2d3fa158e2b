"""The store's status from what the cluster reports, not from what the operator asked for."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_operator.controller.validation import Problem

Condition = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, ok: bool | None, reason: str, message: str, generation: int | None) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    result: Condition = {"type": type_, "status": status, "reason": reason, "message": message}
    if generation is not None:
        result["observedGeneration"] = generation
    return result


def merge_conditions(
    previous: Iterable[Mapping[str, Any]], updates: Iterable[Condition], now: str
) -> list[Condition]:
    """Replace conditions by type; `lastTransitionTime` moves only when a condition's status changes."""
    merged = {c["type"]: dict(c) for c in previous}
    for update in updates:
        old = merged.get(update["type"])
        new = dict(update)
        if old is not None and old.get("status") == new["status"] and old.get("lastTransitionTime"):
            new["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            new["lastTransitionTime"] = now
        merged[update["type"]] = new
    return list(merged.values())


@dataclass(frozen=True)
class Held:
    """The memory server is kept from serving on purpose (e.g. until a restore has succeeded)."""

    phase: str
    """The store's phase meanwhile: `Provisioning`, or `Failed` when it cannot go on by itself."""
    reason: str
    message: str


@dataclass(frozen=True)
class Workload:
    """Readiness of a StatefulSet or Deployment, read from its own status."""

    present: bool
    desired: int
    ready: int
    ok: bool
    reason: str
    message: str


def workload(obj: Mapping[str, Any] | None, what: str, desired: int) -> Workload:
    if obj is None:
        return Workload(False, desired, 0, False, "NotCreated", f"the {what} does not exist yet")
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    if generation is not None and (observed is None or observed < generation):
        return Workload(
            True, desired, ready, False, "Progressing", f"the {what} has not seen its new spec yet"
        )
    if desired == 0:
        return Workload(True, desired, ready, True, "ScaledToZero", f"the {what} runs no replicas")
    if updated < desired:
        return Workload(
            True, desired, ready, False, "RollingUpdate", f"{updated}/{desired} {what} replicas updated"
        )
    if ready < desired:
        return Workload(True, desired, ready, False, "NotReady", f"{ready}/{desired} {what} replicas ready")
    return Workload(True, desired, ready, True, "Ready", f"{ready}/{desired} {what} replicas ready")


def phase_of(vector: Workload, server: Workload, previous_phase: str | None) -> str:
    if vector.ok and server.ok:
        return "Ready"
    if not vector.present and not server.present:
        return "Pending"
    serving = vector.ready > 0 and (server.ready > 0 or server.desired == 0)
    if serving and previous_phase in ("Ready", "Degraded"):
        return "Degraded"
    return "Provisioning"


def failed_status(
    previous: Mapping[str, Any],
    problems: Sequence[Problem],
    generation: int | None,
    now: str,
    credentials_problem: Problem | None = None,
) -> dict[str, Any]:
    """The store cannot be applied as specified: say why, keep everything else as last observed."""
    message = "; ".join(p.message for p in problems)
    reason = problems[0].reason if len(problems) == 1 else "InvalidSpec"
    updates = [condition("Ready", False, "InvalidSpec", f"{reason}: {message}", generation)]
    if credentials_problem is not None:
        updates.append(
            condition(
                "CredentialsReady", False, credentials_problem.reason, credentials_problem.message, generation
            )
        )
    status = dict(previous)
    status["phase"] = "Failed"
    status["conditions"] = merge_conditions(previous.get("conditions") or [], updates, now)
    status["observedGeneration"] = generation
    return status


def paused_status(previous: Mapping[str, Any], generation: int | None, now: str) -> dict[str, Any]:
    updates = [
        condition(
            "Ready",
            False,
            "Paused",
            "reconciliation is paused (spec.paused or the memory-operator.io/paused annotation); "
            "children are left as they are",
            generation,
        )
    ]
    status = dict(previous)
    status["phase"] = "Paused"
    status["conditions"] = merge_conditions(previous.get("conditions") or [], updates, now)
    status["observedGeneration"] = generation
    return status


def observed_status(
    previous: Mapping[str, Any],
    *,
    generation: int | None,
    statefulset: Mapping[str, Any] | None,
    deployment: Mapping[str, Any] | None,
    qdrant_replicas: int,
    server_replicas: int,
    credentials_secret: str,
    endpoints: Mapping[str, str],
    expiration: Condition | None,
    now: str,
    held: Held | None = None,
    extra: Sequence[Condition] = (),
) -> dict[str, Any]:
    """Status of a store whose children were applied: phase and conditions from the workloads' status.

    A `held` server runs no replicas by the operator's choice: the store is not ready, for that reason.
    """
    vector = workload(statefulset, "Qdrant", qdrant_replicas)
    server = workload(deployment, "memory server", server_replicas)
    if held is not None:
        server = Workload(server.present, server_replicas, 0, False, held.reason, held.message)
    phase = held.phase if held is not None else phase_of(vector, server, previous.get("phase"))
    if held is not None:
        ready = condition("Ready", False, held.reason, held.message, generation)
    elif phase == "Ready":
        ready = condition("Ready", True, "Ready", "Qdrant and the memory server are ready", generation)
    else:
        waiting = [f"{w.message}" for w in (vector, server) if not w.ok]
        ready = condition("Ready", False, phase, "; ".join(waiting), generation)
    updates = [
        ready,
        condition("VectorStoreReady", vector.ok, vector.reason, vector.message, generation),
        condition("ServerReady", server.ok, server.reason, server.message, generation),
        condition(
            "CredentialsReady", True, "Available", f"API keys are in Secret {credentials_secret}", generation
        ),
    ]
    if expiration is not None:
        updates.append(expiration)
    updates += extra
    status = dict(previous)
    status.update(
        phase=phase,
        conditions=merge_conditions(previous.get("conditions") or [], updates, now),
        observedGeneration=generation,
        readyReplicas=f"{vector.ready}/{qdrant_replicas}",
        endpoints=dict(endpoints),
        credentialsSecret=credentials_secret,
    )
    return status


def condition_true(status: Mapping[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status.get("conditions") or [])


def without_times(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status minus transition times, to compare two statuses by meaning."""
    result = dict(status)
    result["conditions"] = sorted(
        ({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []),
        key=lambda c: str(c["type"]),
    )
    return result


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return without_times(old or {}) != without_times(new)


def expiration_condition(policies: Sequence[str], generation: int | None) -> Condition:
    if policies:
        return condition(
            "ExpirationScheduled",
            True,
            "Scheduled",
            "expiration scheduled by MemoryPolicy " + ", ".join(sorted(policies)),
            generation,
        )
    return condition(
        "ExpirationScheduled", False, "NoPolicy", "no MemoryPolicy selects this store", generation
    )
