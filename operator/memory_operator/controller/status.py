"""Statuses built from the API's status models, from what the cluster reports, not what was asked for."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_operator.api.common import Condition
from memory_operator.api.store import Endpoints, MemoryStoreStatus, Phase
from memory_operator.controller.validation import Problem


def now_rfc3339() -> str:
    return rfc3339(datetime.datetime.now(tz=datetime.UTC))


def rfc3339(when: datetime.datetime) -> str:
    """An aware time as the API writes it, in UTC to the second (`2026-01-02T03:04:05Z`)."""
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: str) -> datetime.datetime:
    """A time as the API writes it (`2026-01-02T03:04:05Z`) as an aware datetime; one without a zone is
    UTC. Raises ValueError for anything else."""
    parsed = datetime.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def condition(type_: str, ok: bool | None, reason: str, message: str, generation: int | None) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return Condition(
        type=type_, status=status, reason=reason, message=message, observed_generation=generation
    )


def set_condition(conditions: Sequence[Condition], update: Condition, now: str) -> list[Condition]:
    """`conditions` with `update` in place of its type; the transition time moves only with the status."""
    old = next((c for c in conditions if c.type == update.type), None)
    kept = old.last_transition_time if old is not None and old.status == update.status else None
    new = update.model_copy(update={"last_transition_time": kept or now})
    if old is None:
        return [*conditions, new]
    return [new if c.type == update.type else c for c in conditions]


def set_conditions(
    conditions: Sequence[Condition], updates: Iterable[Condition], now: str
) -> list[Condition]:
    result = list(conditions)
    for update in updates:
        result = set_condition(result, update, now)
    return result


def find(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Sequence[Condition], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


@dataclass(frozen=True)
class Held:
    """The memory server is kept from serving on purpose (e.g. until a restore has succeeded)."""

    phase: Phase
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


def workload(
    obj: Mapping[str, Any] | None, what: str, desired: int, applying: bool = False, partition: int = 0
) -> Workload:
    """`applying`: the operator is writing a new spec now, so the live status describes the old one.
    `partition`: replicas below this ordinal keep their template on purpose (a Qdrant upgrade)."""
    if obj is None:
        return Workload(False, desired, 0, False, "NotCreated", f"the {what} does not exist yet")
    status = obj.get("status") or {}
    generation = obj.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    if applying or (generation is not None and (observed is None or observed < generation)):
        return Workload(
            True, desired, ready, False, "Progressing", f"the {what} has not seen its new spec yet"
        )
    if desired == 0:
        return Workload(True, desired, ready, True, "ScaledToZero", f"the {what} runs no replicas")
    if updated < desired - min(partition, desired):
        return Workload(
            True, desired, ready, False, "RollingUpdate", f"{updated}/{desired} {what} replicas updated"
        )
    if ready < desired:
        return Workload(True, desired, ready, False, "NotReady", f"{ready}/{desired} {what} replicas ready")
    return Workload(True, desired, ready, True, "Ready", f"{ready}/{desired} {what} replicas ready")


def phase_of(vector: Workload, server: Workload, previous_phase: str | None) -> Phase:
    if vector.ok and server.ok:
        return "Ready"
    if not vector.present and not server.present:
        return "Pending"
    serving = vector.ready > 0 and (server.ready > 0 or server.desired == 0)
    if serving and previous_phase in ("Ready", "Degraded"):
        return "Degraded"
    return "Provisioning"


def failed(
    previous: MemoryStoreStatus,
    problems: Sequence[Problem],
    generation: int | None,
    now: str,
    credentials_problem: Problem | None = None,
) -> MemoryStoreStatus:
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
    return previous.model_copy(
        update={
            "phase": "Failed",
            "conditions": set_conditions(previous.conditions, updates, now),
            "observed_generation": generation,
        }
    )


def paused(previous: MemoryStoreStatus, generation: int | None, now: str) -> MemoryStoreStatus:
    update = condition(
        "Ready",
        False,
        "Paused",
        "reconciliation is paused (spec.paused or the memory-operator.io/paused annotation); "
        "children are left as they are",
        generation,
    )
    return previous.model_copy(
        update={
            "phase": "Paused",
            "conditions": set_condition(previous.conditions, update, now),
            "observed_generation": generation,
        }
    )


@dataclass(frozen=True)
class Observed:
    """What a reconcile that applied the children saw, for the status."""

    generation: int | None
    vector: Workload
    server: Workload
    qdrant_replicas: int
    credentials_secret: str
    endpoints: Endpoints
    held: Held | None = None
    extra: Sequence[Condition] = ()
    """Further conditions (expiration, backups, restore)."""


def observed(previous: MemoryStoreStatus, seen: Observed, now: str) -> MemoryStoreStatus:
    """Phase and conditions from the workloads' status; a `held` server is not ready, by choice."""
    vector, server, generation = seen.vector, seen.server, seen.generation
    if seen.held is not None:
        server = Workload(server.present, server.desired, 0, False, seen.held.reason, seen.held.message)
    phase = seen.held.phase if seen.held is not None else phase_of(vector, server, previous.phase)
    if seen.held is not None:
        ready = condition("Ready", False, seen.held.reason, seen.held.message, generation)
    elif phase == "Ready":
        ready = condition("Ready", True, "Ready", "Qdrant and the memory server are ready", generation)
    else:
        ready = condition(
            "Ready", False, phase, "; ".join(w.message for w in (vector, server) if not w.ok), generation
        )
    updates = [
        ready,
        condition("VectorStoreReady", vector.ok, vector.reason, vector.message, generation),
        condition("ServerReady", server.ok, server.reason, server.message, generation),
        condition(
            "CredentialsReady",
            True,
            "Available",
            f"API keys are in Secret {seen.credentials_secret}",
            generation,
        ),
        *seen.extra,
    ]
    return previous.model_copy(
        update={
            "phase": phase,
            "conditions": set_conditions(previous.conditions, updates, now),
            "observed_generation": generation,
            "ready_replicas": f"{vector.ready}/{seen.qdrant_replicas}",
            "endpoints": seen.endpoints,
            "credentials_secret": seen.credentials_secret,
        }
    )


def comparable(wire: Mapping[str, Any]) -> dict[str, Any]:
    """A status in wire form minus transition times, to compare two statuses by meaning."""
    result = dict(wire)
    result["conditions"] = sorted(
        ({k: v for k, v in c.items() if k != "lastTransitionTime"} for c in wire.get("conditions") or []),
        key=lambda c: str(c["type"]),
    )
    return result


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    return comparable(old or {}) != comparable(new)
