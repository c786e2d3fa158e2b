"""MemoryStore handlers: every path leads to the same idempotent reconcile, reading the cache."""

from __future__ import annotations

import hashlib
from typing import Any

import kopf

from memory_operator import labels
from memory_operator.controller import sync
from memory_operator.controller.cache import Cache
from memory_operator.controller.handlers import Context
from memory_operator.controller.snapshot import referenced_secret_names

STORES = ("memory-operator.io", "v1alpha1", "memorystores")
# A starting workload reports each step (created, scheduled, running, ready) as a change of its own, the
# StatefulSet, the Deployment and a Job of one store at the same moments: the store's reconcile waits
# this long after the first, and answers them all at once.
CHILD_SETTLE_SECONDS = 0.5


def needs_finalizer(body: kopf.Body, **_: Any) -> bool:
    """Only a store that has children (its status names its Secret) needs cleanup on deletion."""
    return bool((body.get("status") or {}).get("credentialsSecret"))


def has_backup_schedule(spec: kopf.Spec, **_: Any) -> bool:
    return bool(spec.get("backup"))


def is_deletion(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


def spread_delay(uid: str, period: float) -> float:
    """A delay in [0, period) fixed by the object's uid, to spread many objects' timers over a period."""
    fraction = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return fraction * period


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    reconciler, kube = context.reconciler, context.kube
    resync = context.options.resync_seconds

    @kopf.on.resume(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    async def converge(namespace: str | None, name: str, reason: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = Cache.of(kwargs)
        await reconciler.reconcile(cache, namespace, name, trigger=str(reason))
        # A store's labels decide which policies select it.
        await sync.sync_policies(kube, cache, namespace)
        # The quality gauges come from status: a restarted operator has them again.
        sync.quality_metrics(cache, namespace, name)

    # Drift repair: children changed or deleted behind the operator's back come back, and the store's
    # clients sync again (their event handlers are not retried). After a restart every store's timer
    # starts at once: the first run of each waits a share of the period of its own.
    @kopf.timer(*STORES, registry=registry, interval=resync, initial_delay=resync / 2, idle=None)
    async def repair_drift(
        namespace: str | None, name: str, uid: str, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        if not memo.get("drift_spread"):
            memo["drift_spread"] = True
            # Woken early when the store is deleted, whose finalizer waits for its timers.
            stopped: kopf.DaemonStopped = kwargs["stopped"]
            await stopped.wait(spread_delay(uid, resync / 2))
            if stopped:
                return
        cache = Cache.of(kwargs)
        await reconciler.reconcile_soon(cache, namespace, name, trigger="timer", observation=True)
        await reconciler.count(cache, namespace, name)
        await context.clients.sync_store(cache, namespace, name)

    @kopf.timer(
        *STORES,
        registry=registry,
        interval=context.options.schedule_check_seconds,
        when=has_backup_schedule,
        idle=None,
    )
    async def schedule_backups(namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        await sync.schedule_backup(kube, Cache.of(kwargs), namespace, name)

    @kopf.on.delete(*STORES, registry=registry, when=needs_finalizer, retries=10, backoff=5, timeout=300)
    async def release(body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = Cache.of(kwargs)
        await reconciler.release(cache, dict(body))

    @kopf.on.event(*STORES, registry=registry, id="store-gone", when=is_deletion)
    async def store_gone(namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = Cache.of(kwargs)
        await sync.sync_policies(kube, cache, namespace)
        sync.quality_metrics(cache, namespace, name)

    # Readiness comes from the workloads' own status, a restore's outcome from its Job: re-read them
    # when they change, and only what a reconcile reads of them (child_events).
    for group, plural in (("apps", "statefulsets"), ("apps", "deployments"), ("batch", "jobs")):

        @kopf.on.event(
            group, "v1", plural, registry=registry, id=f"child-{plural}", labels={labels.STORE: kopf.PRESENT}
        )
        async def child_changed(
            namespace: str | None, labels: kopf.Labels, type: str | None, body: kopf.Body, **kwargs: Any
        ) -> None:
            assert namespace, "a namespaced resource"
            if not reconciler.child_events.is_news(type, body):
                return
            await reconciler.reconcile_soon(
                Cache.of(kwargs),
                namespace,
                labels[_STORE],
                trigger="child",
                settle=CHILD_SETTLE_SECONDS,
                observation=True,
            )

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
        cache = Cache.of(kwargs)
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
            await reconciler.reconcile_soon(Cache.of(kwargs), namespace, store, trigger="secret")


_STORE = labels.STORE
SECRET_REFERENCES = "store_secret_references"
CERT_MANAGER_CRD = "certificates.cert-manager.io"


def is_cert_manager_crd(name: str, **_: Any) -> bool:
    return name == CERT_MANAGER_CRD
