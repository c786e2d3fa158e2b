"""MemoryBackup handlers, and the results of the Jobs of backups, expiration runs and canary runs."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator import labels
from memory_operator.controller import sync
from memory_operator.controller.backups import is_waiting
from memory_operator.controller.cache import Cache
from memory_operator.controller.handlers import Context
from memory_operator.render.meta import CANARY

BACKUPS = ("memory-operator.io", "v1alpha1", "memorybackups")


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    # A new backup gets its Job from its store's reconcile; a changed one may let the store restore
    # from it, or start its next backup.
    @kopf.on.event(*BACKUPS, registry=registry, id="backup")
    async def backup_changed(
        type: str, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        if type != "DELETED":
            await sync.sync_backup(kube, cache, namespace, name)
        store = ((body.get("spec") or {}).get("storeRef") or {}).get("name")
        for store_name in {store, *_restoring_from(cache, namespace, name)} - {None}:
            await reconciler.reconcile_soon(cache, namespace, str(store_name), trigger="backup")

    # A backup waiting for its store to appear is checked again until it finishes.
    @kopf.timer(*BACKUPS, registry=registry, interval=30, idle=None, when=_unfinished)
    async def backup_waiting(namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        await sync.sync_backup(kube, await context.cache(kwargs), namespace, name)

    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="backup-job", labels={labels.BACKUP: kopf.PRESENT}
    )
    async def backup_job_changed(
        type: str, namespace: str | None, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        if type != "DELETED":
            await sync.sync_backup(kube, await context.cache(kwargs), namespace, labels[_BACKUP])

    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="expiration-job", labels={labels.POLICY: kopf.PRESENT}
    )
    async def expiration_job_changed(
        type: str, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        if type == "DELETED" or not labels.get(_STORE):
            return
        cache = await context.cache(kwargs)
        if await sync.record_run(kube, cache, dict(body), labels[_POLICY], labels[_STORE]):
            await sync.sync_policy(kube, cache, namespace, labels[_POLICY])

    # A finished canary run is the store's `lastCanary`.
    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        registry=registry,
        id="canary-job",
        labels={labels.COMPONENT_KEY: CANARY, labels.STORE: kopf.PRESENT},
    )
    async def canary_job_changed(
        type: str, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        if type != "DELETED":
            await sync.record_canary(kube, await context.cache(kwargs), dict(body), labels[_STORE])


def _unfinished(body: kopf.Body, **_: Any) -> bool:
    return is_waiting(body)


def _restoring_from(cache: Cache, namespace: str, backup: str) -> list[str]:
    """Stores waiting to restore from this backup."""
    result = []
    for store in cache.stores(namespace):
        spec, status = store.get("spec") or {}, store.get("status") or {}
        source = ((spec.get("bootstrap") or {}).get("fromBackup") or {}).get("name")
        if source == backup and status.get("restoredFrom") != backup:
            result.append(store["metadata"]["name"])
    return result


_BACKUP, _POLICY, _STORE = labels.BACKUP, labels.POLICY, labels.STORE
