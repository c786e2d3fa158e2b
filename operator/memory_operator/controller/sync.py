"""The writers besides the store's reconcile: a backup's status, a policy's status, an expiration run's
entry, a canary run's `lastCanary` and the scheduled MemoryBackups. Each reads the cache, decides with
a pure function, then writes only what changed (server-side apply with a field manager of its own)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import ValidationError

from memory_operator.api.store import MemoryStore
from memory_operator.controller import backups, metrics, policies, quality, schedule, status
from memory_operator.controller.act import post
from memory_operator.controller.cache import Cache
from memory_operator.controller.kube import BACKUP, POLICY, STORE, Kube
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
    figures = quality.audit_figures(record.run)
    if figures is not None:
        metrics.record_audit(namespace, store_name, policy_name, figures)
        if figures["deduplicated"]:
            metrics.AUDIT_DEDUPLICATED.labels(namespace, store_name, policy_name).inc(figures["deduplicated"])
    for event in record.events:
        post(event)
    return True


async def record_canary(kube: Kube, cache: Cache, job: Mapping[str, Any], store_name: str) -> bool:
    """A canary Job's result as its store's `lastCanary` (a writer of its own); whether it was new."""
    namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    store = cache.store(namespace, store_name)
    if store is None or store["metadata"].get("deletionTimestamp"):
        return False
    record = quality.canary_record(store, job, cache.job_pods(namespace, job_name), status.now_rfc3339())
    if record is None:
        return False
    await kube.apply_status(
        STORE, namespace, store_name, {quality.LAST_CANARY: record.last_canary}, quality.CANARY_MANAGER
    )
    result = "passed" if record.last_canary["passed"] else "failed"
    metrics.CANARY_RUNS.labels(namespace, store_name, result).inc()
    updated = {**store, "status": {**(store.get("status") or {}), quality.LAST_CANARY: record.last_canary}}
    metrics.record_canary(namespace, store_name, quality.canary_gauges(updated))
    for event in record.events:
        post(event)
    return True


def quality_metrics(cache: Cache, namespace: str, store_name: str) -> None:
    """The store's canary and audit gauges from its status and its policies' (after a restart too)."""
    store = cache.store(namespace, store_name)
    gone = store is None or bool(store["metadata"].get("deletionTimestamp"))
    metrics.record_canary(namespace, store_name, None if gone else quality.canary_gauges(store or {}))
    for policy in cache.policies(namespace):
        for run in (policy.get("status") or {}).get("lastRuns") or []:
            if run.get("store") == store_name:
                figures = None if gone else quality.audit_figures(run)
                metrics.record_audit(namespace, store_name, policy["metadata"]["name"], figures)


async def schedule_backup(
    kube: Kube, cache: Cache, namespace: str, name: str, may_write: Callable[[], Awaitable[bool]]
) -> str | None:
    """Create the store's MemoryBackup for the newest tick of its schedule, if it is due and `may_write`
    (asked only then: whether this replica reconciles)."""
    body = cache.store(namespace, name)
    if body is None:
        return None
    try:
        store = MemoryStore.model_validate(body)
    except ValidationError:
        return None
    due = schedule.due_backup(store, cache.backups(namespace), datetime.datetime.now(datetime.UTC))
    if due is None or not await may_write():
        return None
    logger.info("creating scheduled MemoryBackup %s/%s", namespace, due)
    await kube.create(backup_render.scheduled_backup(store, due))
    return due
