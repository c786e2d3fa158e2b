"""The writer of MemoryErasures' status: reads the cache, decides with `erasure_status` (pure), writes what
changed (server-side apply), runs a store that was down's erasure again, posts Events and counts the
outcome. Logs name erasures, never their subjects."""

from __future__ import annotations

import logging

from memory_operator.controller import erasure_status, erasures, metrics, status
from memory_operator.controller.act import post
from memory_operator.controller.cache import Cache
from memory_operator.controller.kube import ERASURE, JOB, Kube
from memory_operator.render import names

logger = logging.getLogger("memory_operator.controller")


async def sync_erasure(kube: Kube, cache: Cache, namespace: str, name: str) -> None:
    """A MemoryErasure's status from its store, its Job and the store's backups."""
    body = cache.erasure(namespace, name)
    if body is None:
        return
    store_name = str((body.get("spec") or {}).get("store") or "")
    model = erasures.parsed(body)
    job_name = names.erasure_job_name(name)
    job = None
    ahead = None
    if model is not None:
        children = cache.children(namespace, store_name)
        found = next((c for c in children if c["kind"] == "Job" and c["metadata"]["name"] == job_name), None)
        job = erasures.job_of(model, found)
        queue = [
            e for e in erasures.of_store(cache.erasures(namespace), store_name) if erasures.unfinished(e)
        ]
        ahead = queue[0].metadata.name if queue and queue[0].metadata.name != name else None
    outcome = erasure_status.erasure_outcome(
        body,
        cache.store(namespace, store_name),
        job,
        cache.job_pods(namespace, job_name) if job is not None else [],
        cache.backups(namespace),
        status.now_rfc3339(),
        ahead=ahead,
    )
    if outcome.status is not None:
        await kube.apply_status(ERASURE, namespace, name, outcome.status)
    if outcome.outcome is not None:
        metrics.ERASURES.labels(namespace=namespace, store=store_name, outcome=outcome.outcome).inc()
    if outcome.retry and job is not None:
        logger.info("running MemoryErasure %s/%s again: its store was unavailable", namespace, name)
        await kube.delete(JOB, namespace, job_name)
    for event in outcome.events:
        post(event)


async def sync_store_erasures(
    kube: Kube, cache: Cache, namespace: str, store: str, *, finished: bool = True
) -> None:
    """The MemoryErasures of the store (its state or its backups changed); `finished`: the completed
    ones too (whose backup figures follow the store's backups)."""
    for erasure in erasures.of_store(cache.erasures(namespace), store):
        if finished or erasures.unfinished(erasure):
            await sync_erasure(kube, cache, namespace, erasure.metadata.name)
