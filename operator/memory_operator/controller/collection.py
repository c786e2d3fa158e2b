"""The collection Job: the store's collection made (or brought) to the spec's settings before the memory
server first serves. Pure: decided from the store, its Jobs and its last status.

Qdrant would otherwise create the collection with its own defaults when the server first writes. The
Job (`memory-operator collection`, named after a digest of the settings) runs after any restore, once
per settings; a Job of other settings is deleted. A store that never served has its server held until
the Job succeeds; once it has served, a later Job (new settings) runs beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator import labels
from memory_operator.api.collection import CollectionSetupSummary
from memory_operator.api.common import Condition
from memory_operator.api.store import MemoryStore, MemoryStoreStatus
from memory_operator.controller import plan, results, status
from memory_operator.controller.snapshot import Snapshot
from memory_operator.render import collection as collection_render
from memory_operator.render import names

CONDITION = "CollectionReady"


@dataclass(frozen=True)
class Collection:
    run_job: bool = False
    """Keep the collection Job among the desired children."""
    hold_server: bool = False
    """The server has never served and the collection is not ready yet."""
    condition: Condition | None = None
    delete: list[plan.ObjectRef] = field(default_factory=list)
    """Collection Jobs of other settings."""
    warning: str | None = None
    """A message worth a Warning Event (a setting Qdrant cannot change, a failed Job)."""


def decide(store: MemoryStore, snap: Snapshot, previous: MemoryStoreStatus, restoring: bool) -> Collection:
    """What to do about the collection; `restoring`: a restore must finish first."""
    generation = store.metadata.generation
    served = _served(store, snap, previous)
    if restoring:
        return Collection(hold_server=not served)
    wanted = collection_render.job_name(store)
    jobs = [
        c for c in snap.of_kind("Job") if labels.COLLECTION_SETTINGS in (c["metadata"].get("labels") or {})
    ]
    stale = [plan.ObjectRef.of(j) for j in jobs if j["metadata"]["name"] != wanted]
    job = next((j for j in jobs if j["metadata"]["name"] == wanted), None)
    finished = results.job_finished(job) if job is not None else None
    if finished is None:
        message = "making the collection as specified (collection Job running)"
        condition = status.condition(CONDITION, served or None, "Running", message, generation)
        return Collection(run_job=True, hold_server=not served, condition=condition, delete=stale)
    summary = _summary(snap.job_pods.get(wanted, []))
    if finished and summary.succeeded:
        return _completed(summary, generation, stale)
    why = summary.error or "the collection Job failed without a summary; see its pod's logs"
    message = f"collection Job {wanted} failed ({summary.reason or 'JobFailed'}): {why}"
    condition = status.condition(CONDITION, False, summary.reason or "JobFailed", message, generation)
    return Collection(
        run_job=True, hold_server=not served, condition=condition, delete=stale, warning=message
    )


def _completed(
    summary: CollectionSetupSummary, generation: int | None, stale: list[plan.ObjectRef]
) -> Collection:
    fixed = [
        f"{outcome.name}.{d.setting} (wanted {d.desired}, is {d.actual})"
        for outcome in summary.collections
        for d in outcome.not_updatable
    ]
    if fixed:
        message = "Qdrant cannot change on a live collection: " + "; ".join(fixed)
        condition = status.condition(CONDITION, True, "SettingsNotApplied", message, generation)
        return Collection(run_job=True, condition=condition, delete=stale, warning=message)
    message = "the collection has the spec's settings"
    condition = status.condition(CONDITION, True, "Ready", message, generation)
    return Collection(run_job=True, condition=condition, delete=stale)


def _served(store: MemoryStore, snap: Snapshot, previous: MemoryStoreStatus) -> bool:
    """Whether the server serves already: the collection was ready, or its Deployment runs replicas
    (held ones run none), as a store's does once released, or an older store's that never waited."""
    if status.is_true(previous.conditions, CONDITION):
        return True
    deployment = snap.child("Deployment", names.server_deployment_name(store))
    return bool(deployment and (deployment.get("spec") or {}).get("replicas"))


def _summary(pods: Sequence[Mapping[str, Any]]) -> CollectionSetupSummary:
    message = results.termination_message(pods) or {}
    try:
        return CollectionSetupSummary.model_validate(message)
    except ValidationError:
        return CollectionSetupSummary(
            error=f"the collection Job left an unreadable summary: {message!r}"[:1024]
        )
