"""MemoryStore handlers: every path leads to the same idempotent reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller.handlers import Context
from memory_operator.controller.settings import MANAGED_BY, STORE_LABEL

STORES = (GROUP, VERSION, "memorystores")


def needs_finalizer(body: kopf.Body, **_: Any) -> bool:
    """Only a store that has children (its status names its Secret) needs cleanup on deletion."""
    return bool((body.get("status") or {}).get("credentialsSecret"))


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    reconciler = context.reconciler
    resync = context.options.resync_seconds

    @kopf.on.resume(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    async def converge(namespace: str | None, name: str, reason: str, **_: Any) -> None:
        assert namespace
        await reconciler.reconcile(namespace, name, trigger=str(reason))

    # Drift repair: children changed or deleted behind the operator's back come back.
    @kopf.timer(*STORES, registry=registry, interval=resync, initial_delay=resync / 2, idle=None)
    async def repair_drift(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace
        await reconciler.reconcile_soon(namespace, name, trigger="timer")

    @kopf.on.delete(*STORES, registry=registry, when=needs_finalizer, retries=10, backoff=5, timeout=300)
    async def release(body: kopf.Body, **_: Any) -> None:
        await reconciler.release(dict(body))

    # Readiness comes from the workloads' own status: re-read it when they change.
    @kopf.on.event(
        "apps", "v1", "statefulsets", registry=registry, labels={**MANAGED_BY, STORE_LABEL: kopf.PRESENT}
    )
    @kopf.on.event(
        "apps", "v1", "deployments", registry=registry, labels={**MANAGED_BY, STORE_LABEL: kopf.PRESENT}
    )
    async def workload_changed(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        assert namespace
        await reconciler.reconcile_soon(namespace, labels[STORE_LABEL], trigger="child")
