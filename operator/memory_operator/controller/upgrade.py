"""Qdrant upgrades: a new `spec.vectorStore.image` reaches the nodes one at a time. Pure: decided from
the store, its live StatefulSet, its MemoryBackups and its Jobs.

The state of an upgrade lives in the StatefulSet itself: its template holds the new image and its
`rollingUpdate.partition` the lowest ordinal that runs it (nodes below keep their version). So:

1. The image changes: a downgrade across minor versions is refused (Qdrant cannot read the storage of a
   newer minor version). Otherwise the template takes the new image with the partition at `replicas`,
   so that no node restarts yet, and the store's MemoryBackup `<store>-pre-upgrade-<version>` is
   taken when the store has a backup destination.
2. Once it completed (or with no destination), the partition drops to `replicas - 1`: the highest
   node restarts on the new image.
3. When that node runs it and every node is ready, the upgrade check Job waits until every shard
   replica is active again on every peer (`memory-operator upgrade-check`); then the partition drops by
   one, and so on down to 0.

A failed backup or check stops the upgrade where it is, with the reason in the `VectorStoreUpgraded`
condition and an Event; deleting the failed MemoryBackup or Job has it taken or run again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from memory_operator import images, labels
from memory_operator.api.collection import UpgradeCheckSummary
from memory_operator.api.common import Condition
from memory_operator.api.store import MemoryStore
from memory_operator.controller import plan, results, status
from memory_operator.controller.snapshot import Snapshot
from memory_operator.controller.validation import Problem
from memory_operator.render import names

CONDITION = "VectorStoreUpgraded"
QDRANT_CONTAINER = "qdrant"
# Reasons of an upgrade under way; `Updating` is any other roll of the pod template, `Current` the end.
STEPS = frozenset(
    {"BackingUp", "BackupFailed", "Rolling", "WaitingForShards", "ShardsNotActive", "JobFailed"}
)


@dataclass(frozen=True)
class Upgrade:
    partition: int | None = None
    """The StatefulSet's partition; `None` when no upgrade is under way."""
    check: int | None = None
    """The ordinal whose upgrade check Job is kept among the desired children."""
    backup: str | None = None
    """The MemoryBackup to take before the first node restarts, when it does not exist yet."""
    condition: Condition | None = None
    problem: Problem | None = None
    """A downgrade refused: nothing of the spec is applied."""
    delete: list[plan.ObjectRef] = field(default_factory=list)
    """Upgrade check Jobs no longer needed."""
    warning: str | None = None
    """A message worth a Warning Event (a failed backup or check)."""


def decide(store: MemoryStore, snap: Snapshot, target: str, previous: Condition | None = None) -> Upgrade:
    """What to do about the Qdrant image: `target` is the image the spec asks for; `previous` the
    condition as last written (the last node's restart is still the upgrade's)."""
    live = snap.child("StatefulSet", names.qdrant_statefulset_name(store))
    if live is None:
        return Upgrade()
    replicas = store.spec.vector_store.replicas
    generation = store.metadata.generation
    running = template_image(live)
    partition = live_partition(live)
    checks = check_jobs(snap)
    if running != target:
        refusal = downgrade(running, target)
        if refusal is not None:
            return Upgrade(problem=Problem("QdrantDowngradeRefused", refusal))
        partition = replicas
    elif partition == 0:
        message = f"every Qdrant node runs {target}"
        reason = "Current"
        if not rolled(live, replicas, 0, ready=False):
            updated = int((live.get("status") or {}).get("updatedReplicas") or 0)
            message = f"{updated} of {replicas} Qdrant nodes run the current pod template ({target})"
            reason = "Rolling" if previous is not None and previous.reason in STEPS else "Updating"
        condition = status.condition(CONDITION, reason == "Current", reason, message, generation)
        return Upgrade(condition=condition, delete=[plan.ObjectRef.of(j) for j in checks])
    stale = [plan.ObjectRef.of(j) for j in checks if _label(j) != names.image_digest(target)]
    if partition >= replicas:
        return _before_first_node(store, snap, target, replicas, stale)
    return _between_nodes(store, snap, live, target, partition, stale)


def _before_first_node(
    store: MemoryStore, snap: Snapshot, target: str, replicas: int, stale: list[plan.ObjectRef]
) -> Upgrade:
    """The new image is in the template, no node runs it: take the backup, then restart the highest."""
    generation = store.metadata.generation
    if store.spec.backup is not None:
        name = names.upgrade_backup_name(store, target)
        backup = next((b for b in snap.backups if b["metadata"]["name"] == name), None)
        phase = str(((backup or {}).get("status") or {}).get("phase") or "Pending")
        if phase == "Failed":
            error = ((backup or {}).get("status") or {}).get("error")
            message = (
                f"MemoryBackup {name}, taken before moving Qdrant to {target}, failed ({error}); Qdrant "
                "stays at its version: delete the MemoryBackup to take it again"
            )
            condition = status.condition(CONDITION, False, "BackupFailed", message, generation)
            return Upgrade(partition=replicas, condition=condition, delete=stale, warning=message)
        if phase != "Completed":
            message = f"taking MemoryBackup {name} before moving Qdrant to {target}"
            condition = status.condition(CONDITION, False, "BackingUp", message, generation)
            return Upgrade(
                partition=replicas,
                backup=None if backup is not None else name,
                condition=condition,
                delete=stale,
            )
    message = f"restarting Qdrant node {replicas - 1} on {target} ({replicas} to go)"
    condition = status.condition(CONDITION, False, "Rolling", message, generation)
    return Upgrade(partition=replicas - 1, condition=condition, delete=stale)


def _between_nodes(
    store: MemoryStore,
    snap: Snapshot,
    live: Mapping[str, Any],
    target: str,
    partition: int,
    stale: list[plan.ObjectRef],
) -> Upgrade:
    """Nodes from `partition` up run the new image: once they are ready and every shard is active again,
    the next node restarts."""
    generation = store.metadata.generation
    replicas = store.spec.vector_store.replicas
    done = replicas - partition
    if not rolled(live, replicas, partition):
        message = f"restarting Qdrant node {partition} on {target} ({done} of {replicas} done)"
        condition = status.condition(CONDITION, False, "Rolling", message, generation)
        return Upgrade(partition=partition, condition=condition, delete=stale)
    job_name = names.upgrade_check_job_name(store, target, partition)
    job = snap.child("Job", job_name)
    finished = results.job_finished(job) if job is not None else None
    if finished is None:
        message = (
            f"Qdrant node {partition} runs {target}: waiting for every shard replica to be active before "
            f"the next node restarts ({done} of {replicas} done)"
        )
        condition = status.condition(CONDITION, False, "WaitingForShards", message, generation)
        return Upgrade(partition=partition, check=partition, condition=condition, delete=stale)
    summary = _summary(snap.job_pods.get(job_name, []))
    if finished and summary.succeeded:
        following = partition - 1
        message = f"restarting Qdrant node {following} on {target} ({done} of {replicas} done)"
        condition = status.condition(CONDITION, False, "Rolling", message, generation)
        return Upgrade(partition=following, condition=condition, delete=stale)
    why = summary.error or "the upgrade check Job failed without a summary; see its pod's logs"
    message = (
        f"upgrade check {job_name} failed ({summary.reason or 'JobFailed'}): {why}; Qdrant node "
        f"{partition - 1} and below keep their version: delete the Job to check again"
    )
    condition = status.condition(CONDITION, False, summary.reason or "JobFailed", message, generation)
    return Upgrade(partition=partition, check=partition, condition=condition, delete=stale, warning=message)


def downgrade(running: str | None, target: str) -> str | None:
    """Why moving from `running` to `target` is refused: an older minor version (or major)."""
    old, new = images.tag_version(running or ""), images.tag_version(target)
    if old is None or new is None or new[:2] >= old[:2]:
        return None
    return (
        f"Qdrant cannot go back from {'.'.join(map(str, old))} to {'.'.join(map(str, new))}: a node "
        "cannot read the storage of a newer minor version. Set spec.vectorStore.image back to "
        f"{running}; to go back, restore a backup taken before the upgrade into a new store"
    )


def template_image(statefulset: Mapping[str, Any]) -> str | None:
    containers = ((statefulset.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    qdrant = next((c for c in containers if c.get("name") == QDRANT_CONTAINER), None)
    return None if qdrant is None else qdrant.get("image")


def live_partition(statefulset: Mapping[str, Any]) -> int:
    strategy = (statefulset.get("spec") or {}).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def rolled(statefulset: Mapping[str, Any], replicas: int, partition: int, ready: bool = True) -> bool:
    """Whether the StatefulSet controller has seen its spec and the nodes from `partition` up run the
    template; with `ready`, whether every node is ready too."""
    meta, seen = statefulset["metadata"], statefulset.get("status") or {}
    if int(seen.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return False
    updated = int(seen.get("updatedReplicas") or 0)
    return updated >= replicas - partition and (not ready or int(seen.get("readyReplicas") or 0) >= replicas)


def check_jobs(snap: Snapshot) -> list[Mapping[str, Any]]:
    return [j for j in snap.of_kind("Job") if _label(j) is not None]


def _label(job: Mapping[str, Any]) -> str | None:
    return (job["metadata"].get("labels") or {}).get(labels.QDRANT_UPGRADE)


def _summary(pods: Sequence[Mapping[str, Any]]) -> UpgradeCheckSummary:
    message = results.termination_message(pods) or {}
    try:
        return UpgradeCheckSummary.model_validate(message)
    except ValidationError:
        return UpgradeCheckSummary(error=f"the upgrade check left an unreadable summary: {message!r}"[:1024])
