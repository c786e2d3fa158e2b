"""The writers besides the store's reconcile: a backup's status, a policy's status, an expiration run's
entry and the scheduled MemoryBackups. Each reads the cache, decides with a pure function, then writes
only what changed (server-side apply with a field manager of its own)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from memory_operator.api.store import MemoryStore
from memory_operator.controller import backups, metrics, policies, schedule, status
from memory_operator.controller.act import post
from memory_operator.controller.cache import Cache
from memory_operator.controller.kube import BACKUP, POLICY, Kube
from memory_operator.render import backup as backup_render
from memory_operator.render import names

logger = logging.getLogger("memory_operator.controller")


async def sync_backup(kube: Kube, cache: Cache, namespace: str, name: str) -> None:
    """A MemoryBackup's status from its store and its Job."""
    backup = cache.backup(namespace, name)
    if backup is None:
        return
    store_name = ((backup.get("spec") or {}).get("storeRef") or {}).get("name") or ""
    job = backups.job_of(backup, cache.children(namespace, store_name))
    pods = cache.job_pods(namespace, names.backup_job_name(name)) if job else []
    outcome = backups.backup_outcome(
        backup, cache.store(namespace, store_name), job, pods, status.now_rfc3339()
    )
    if outcome.status is not None:
        await kube.apply_status(BACKUP, namespace, name, outcome.status)
    # Retention removed older backups' files: their MemoryBackups go too.
    for pruned in backups.pruned_backups(backup, cache.backups(namespace)):
        logger.info("deleting MemoryBackup %s/%s: its backup was pruned by %s", namespace, pruned, name)
        await kube.delete(BACKUP, namespace, pruned)
    for event in outcome.events:
        post(event)


async def sync_policy(kube: Kube, cache: Cache, namespace: str, name: str) -> None:
    """The fields of a policy's status its reconcile owns, when they changed."""
    policy = cache.policy(namespace, name)
    if policy is None or policy["metadata"].get("deletionTimestamp"):
        return
    new = policies.policy_status(policy, cache.stores(namespace), status.now_rfc3339())
    if new is not None and status.changed(policies.owned_part(policy.get("status") or {}), new):
        await kube.apply_status(POLICY, namespace, name, new)


async def sync_policies(kube: Kube, cache: Cache, namespace: str) -> None:
    """Every policy of the namespace: a store's labels decide which policies select it."""
    for policy in cache.policies(namespace):
        await sync_policy(kube, cache, namespace, policy["metadata"]["name"])


async def record_run(
    kube: Kube, cache: Cache, job: Mapping[str, Any], policy_name: str, store_name: str
) -> bool:
    """An expiration Job's result as its store's `lastRuns` entry; whether it was new."""
    namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    policy = cache.policy(namespace, policy_name)
    if policy is None:
        return False
    pods = cache.job_pods(namespace, job_name)
    record = policies.run_record(
        policy, cache.store(namespace, store_name), job, pods, store_name, status.now_rfc3339()
    )
    if record is None:
        return False
    await kube.apply_status(
        POLICY, namespace, policy_name, {"lastRuns": [record.run]}, policies.run_manager(store_name)
    )
    result = "success" if record.run["succeeded"] else "failure"
    metrics.EXPIRATION_RUNS.labels(
        namespace=namespace, store=store_name, policy=policy_name, result=result
    ).inc()
    for event in record.events:
        post(event)
    return True


async def schedule_backup(kube: Kube, cache: Cache, namespace: str, name: str) -> str | None:
    """Create the store's MemoryBackup for the newest tick of its schedule, if it is due."""
    body = cache.store(namespace, name)
    if body is None:
        return None
    try:
        store = MemoryStore.model_validate(body)
    except ValidationError:
        return None
    due = schedule.due_backup(store, cache.backups(namespace), datetime.datetime.now(datetime.UTC))
    if due is None:
        return None
    logger.info("creating scheduled MemoryBackup %s/%s", namespace, due)
    await kube.create(backup_render.scheduled_backup(store, due))
    return due


def _epoch(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
