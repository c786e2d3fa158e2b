"""MemoryStore handlers: every path leads to the same idempotent reconcile, reading the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import kopf

from memory_operator import labels
from memory_operator.controller import sync
from memory_operator.controller.cache import WORKLOADS, Cache
from memory_operator.controller.handlers import Context
from memory_operator.controller.snapshot import referenced_secret_names
from memory_operator.controller.store_timers import StoreTimers, TimedStore, Timer, spread_delay

STORES = ("memory-operator.io", "v1alpha1", "memorystores")
# A starting workload reports each step (created, scheduled, running, ready) as a change of its own, the
# StatefulSet, the Deployment and a Job of one store at the same moments: the store's reconcile waits
# this long after the first, and answers them all at once.
CHILD_SETTLE_SECONDS = 0.5


def needs_finalizer(body: kopf.Body, **_: Any) -> bool:
    """A store that has its finalizer (its first reconcile puts it on with its first children) or that
    has children (its status names its Secret: a store of an earlier version) is released on deletion.
    Kopf adds the finalizer only to a store of the second kind, and removes none of the first."""
    if labels.FINALIZER in (body.get("metadata", {}).get("finalizers") or []):
        return True
    return bool((body.get("status") or {}).get("credentialsSecret"))


def is_deletion(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    reconciler, kube = context.reconciler, context.kube
    resync = context.options.resync_seconds

    @kopf.on.resume(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    async def converge(namespace: str | None, name: str, reason: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        await reconciler.reconcile(cache, namespace, name, trigger=str(reason))
        # A store's labels decide which policies select it.
        await sync.sync_policies(kube, cache, namespace)
        # The quality gauges come from status: a restarted operator has them again.
        sync.quality_metrics(cache, namespace, name)

    # Drift repair (children changed or deleted behind the operator's back come back, and the store's
    # clients sync again: their event handlers are not retried) and backup schedule checks, for every
    # store from one loop (store_timers.py). After a restart, every store's first repair waits half a
    # period and a share of the other half of its own.
    peering = context.peering

    async def reconciles_here() -> bool:
        return peering is None or await peering.active(kube, asyncio.get_running_loop().time())

    async def repair_drift(store: TimedStore) -> None:
        cache = await context.cache_now()
        await reconciler.reconcile_soon(cache, store.namespace, store.name, trigger="timer", observation=True)
        await reconciler.count(cache, store.namespace, store.name)
        await context.clients.sync_store(cache, store.namespace, store.name)

    async def check_backup_schedule(store: TimedStore) -> None:
        await sync.schedule_backup(
            kube, await context.cache_now(), store.namespace, store.name, reconciles_here
        )

    timers = (
        Timer(
            "drift repair",
            resync,
            repair_drift,
            first_delay=lambda store: resync / 2 + spread_delay(store.uid, resync / 2),
        ),
        Timer(
            "backup schedule check",
            context.options.schedule_check_seconds,
            check_backup_schedule,
            applies=lambda store: store.backup_schedule,
            gated=False,
        ),
    )

    @kopf.index(*STORES, registry=registry, id=TIMED_STORES)
    async def timed_stores(
        namespace: str | None, name: str, uid: str, meta: kopf.Meta, spec: kopf.Spec, **_: Any
    ) -> dict[Any, Any]:
        timed = TimedStore(
            str(namespace),
            name,
            uid,
            deleting=bool(meta.get("deletionTimestamp")),
            backup_schedule=bool(spec.get("backup")),
        )
        return {(namespace, name): timed}

    @kopf.on.startup(registry=registry)
    async def start_timers(memo: kopf.Memo, **kwargs: Any) -> None:
        index: kopf.Index[Any, TimedStore] = kwargs[TIMED_STORES]
        memo["store_timers"] = store_timers = StoreTimers(
            timers, lambda: (store for key in index for store in index[key]), reconciles_here
        )
        # Kept in the memo: the event loop holds tasks only weakly.
        memo["store_timers_task"] = asyncio.get_running_loop().create_task(store_timers.run_forever())

    @kopf.on.cleanup(registry=registry)
    async def stop_timers(memo: kopf.Memo, **_: Any) -> None:
        task = memo.get("store_timers_task")
        if task is not None:
            task.cancel()
            await memo["store_timers"].stop()

    @kopf.on.delete(*STORES, registry=registry, when=needs_finalizer, retries=10, backoff=5, timeout=300)
    async def release(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        await reconciler.release(cache, dict(body))

    @kopf.on.event(*STORES, registry=registry, id="store-gone", when=is_deletion)
    async def store_gone(namespace: str | None, name: str, uid: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        context.diffbase.forget(uid)
        cache = await context.cache(kwargs)
        await sync.sync_policies(kube, cache, namespace)
        sync.quality_metrics(cache, namespace, name)

    # Readiness comes from the workloads' own status, a restore's outcome from its Job: re-read them
    # when they change, and only what a reconcile reads of them (child_events).
    async def observe_child(cache: Cache, namespace: str, store: str) -> None:
        await reconciler.reconcile_soon(
            cache, namespace, store, trigger="child", settle=CHILD_SETTLE_SECONDS, observation=True
        )

    # The workloads' events come from the operator's own streams.
    def workload_changed(event_type: str | None, body: Mapping[str, Any]) -> Awaitable[None] | None:
        meta = body.get("metadata") or {}
        store = (meta.get("labels") or {}).get(_STORE)
        if not store or not reconciler.child_events.is_news(event_type, body):
            return None
        return observe_workload(str(meta.get("namespace")), str(store))

    async def observe_workload(namespace: str, store: str) -> None:
        # The streams go on while Kopf pauses this replica: only the replica that reconciles answers.
        if await reconciles_here():
            await observe_child(await context.cache_now(), namespace, store)

    for workload in WORKLOADS:
        context.informers.react(workload, workload_changed)

    # Jobs' events come from Kopf: other handlers answer them too.
    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="child-jobs", labels={labels.STORE: kopf.PRESENT}
    )
    async def job_changed(
        namespace: str | None, labels: kopf.Labels, type: str | None, body: kopf.Body, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        if reconciler.child_events.is_news(type, body):
            await observe_child(await context.cache(kwargs), namespace, labels[_STORE])

    # cert-manager installed (or removed) while the operator runs: stores that name an issuer go on (or
    # are refused). The initial listing reports an installed one as well.
    @kopf.on.event(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        registry=registry,
        id="cert-manager",
        when=is_cert_manager_crd,
    )
    async def cert_manager_changed(type: str | None, **kwargs: Any) -> None:
        if not reconciler.set_cert_manager(type != "DELETED"):
            return
        cache = await context.cache(kwargs)
        for store in cache.every_store():
            if ((store.get("spec") or {}).get("tls") or {}).get("issuerRef"):
                meta = store["metadata"]
                await reconciler.reconcile_soon(
                    cache, meta["namespace"], meta["name"], trigger="cert-manager"
                )

    # Which stores name a Secret, kept up to date as stores change: a Secret's event (hundreds when many
    # stores are made at once) finds its stores without reading every store of the namespace.
    @kopf.index(*STORES, registry=registry, id=SECRET_REFERENCES)
    async def store_secret_references(
        namespace: str | None, name: str, body: kopf.Body, **_: Any
    ) -> dict[Any, Any]:
        return {(namespace, secret): name for secret in referenced_secret_names(body)}

    # A Secret a store names (its existing keys, model keys, backup credentials) that appears or changes.
    @kopf.on.event("", "v1", "secrets", registry=registry, id="named-secret")
    async def secret_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        naming: kopf.Index[tuple[str, str], str] = kwargs[SECRET_REFERENCES]
        for store in sorted(set(naming.get((namespace, name), ()))):
            await reconciler.reconcile_soon(await context.cache(kwargs), namespace, store, trigger="secret")


_STORE = labels.STORE
SECRET_REFERENCES = "store_secret_references"
TIMED_STORES = "timed_stores"
CERT_MANAGER_CRD = "certificates.cert-manager.io"


def is_cert_manager_crd(name: str, **_: Any) -> bool:
    return name == CERT_MANAGER_CRD
