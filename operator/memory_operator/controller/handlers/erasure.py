"""MemoryErasure handlers: the erasure's status follows its store, its Job and the store's backups; a
change of an erasure has its store (and any store restoring from that store's backups) reconciled,
which runs its Job or re-applies it."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator import labels
from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller import erasures
from memory_operator.controller.cache import Cache
from memory_operator.controller.erasure_sync import sync_erasure, sync_store_erasures
from memory_operator.controller.handlers import Context

ERASURES = (GROUP, VERSION, "memoryerasures")
BACKUPS = (GROUP, VERSION, "memorybackups")
STORES = (GROUP, VERSION, "memorystores")
# How often an unfinished erasure is looked at again: a store that was down is retried on time.
CHECK_SECONDS = 10


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    @kopf.on.event(*ERASURES, registry=registry, id="erasure")
    async def erasure_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        if type != "DELETED":
            await sync_erasure(kube, cache, namespace, name)
        if type is None:
            return  # the initial listing: the stores' own resume handlers reconcile them
        store = str((body.get("spec") or {}).get("store") or "")
        for store_name in sorted({store, *_restoring_from(cache, namespace, store)}):
            if cache.store(namespace, store_name) is not None:
                await reconciler.reconcile_soon(cache, namespace, store_name, trigger="erasure")

    # An unfinished erasure is checked again: a store that was down has its erasure run again on time.
    @kopf.timer(*ERASURES, registry=registry, interval=CHECK_SECONDS, idle=None, when=_unfinished)
    async def erasure_waiting(namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        await sync_erasure(kube, await context.cache(kwargs), namespace, name)

    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="erasure-job", labels={labels.ERASURE: kopf.PRESENT}
    )
    async def erasure_job_changed(namespace: str | None, labels: kopf.Labels, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        await sync_erasure(kube, await context.cache(kwargs), namespace, str(labels[_ERASURE]))

    # Backups taken, completed or pruned change which backups still hold an erased subject.
    @kopf.on.event(*BACKUPS, registry=registry, id="erasure-backups")
    async def backup_changed(type: str | None, body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        if type is None:
            return
        store = ((body.get("spec") or {}).get("storeRef") or {}).get("name")
        if store:
            await sync_store_erasures(kube, await context.cache(kwargs), namespace, str(store))

    # A store made, deleted or restored: its unfinished erasures' state follows (every erasure's when
    # it comes or goes; completed ones follow the backups, and are kept for good: many of them).
    @kopf.on.event(*STORES, registry=registry, id="store-erasures")
    async def store_changed(type: str | None, namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        if type is not None:
            finished = type in ("ADDED", "DELETED")
            await sync_store_erasures(kube, await context.cache(kwargs), namespace, name, finished=finished)


def _unfinished(body: kopf.Body, **_: Any) -> bool:
    return erasures.phase(body) not in ("Completed", "Failed")


def _restoring_from(cache: Cache, namespace: str, store: str) -> list[str]:
    """Stores restoring (not yet restored) from a backup of `store`: their restores re-apply its erasures."""
    found = []
    for body in cache.stores(namespace):
        spec, seen = body.get("spec") or {}, body.get("status") or {}
        source = ((spec.get("bootstrap") or {}).get("fromBackup") or {}).get("name")
        backup = cache.backup(namespace, source) if source else None
        taken_of = (((backup or {}).get("spec") or {}).get("storeRef") or {}).get("name")
        if backup is not None and taken_of == store and seen.get("restoredFrom") != source:
            found.append(str(body["metadata"]["name"]))
    return found


_ERASURE = labels.ERASURE
