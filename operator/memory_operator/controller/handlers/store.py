"""MemoryStore handlers: every path leads to the same idempotent reconcile."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import kopf

from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller.handlers import Context
from memory_operator.controller.kube import STORE
from memory_operator.controller.settings import MANAGED_BY, STORE_LABEL
from memory_operator.render.meta import RESTORE_LABEL

STORES = (GROUP, VERSION, "memorystores")
BACKUPS = (GROUP, VERSION, "memorybackups")


def needs_finalizer(body: kopf.Body, **_: Any) -> bool:
    """Only a store that has children (its status names its Secret) needs cleanup on deletion."""
    return bool((body.get("status") or {}).get("credentialsSecret"))


def spread_delay(uid: str, period: float) -> float:
    """A delay in [0, period) fixed by the object's uid, to spread many objects' timers over a period."""
    fraction = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return fraction * period


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    reconciler = context.reconciler
    resync = context.options.resync_seconds

    @kopf.on.resume(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*STORES, registry=registry, retries=10, backoff=5, timeout=600)
    async def converge(namespace: str | None, name: str, reason: str, **_: Any) -> None:
        assert namespace
        await reconciler.reconcile(namespace, name, trigger=str(reason))

    # Drift repair: children changed or deleted behind the operator's back come back. After a restart
    # every store's timer starts at once: the first run of each waits a share of the period of its own.
    @kopf.timer(*STORES, registry=registry, interval=resync, initial_delay=resync / 2, idle=None)
    async def repair_drift(namespace: str | None, name: str, uid: str, memo: kopf.Memo, **_: Any) -> None:
        assert namespace
        if not memo.get("drift_spread"):
            memo["drift_spread"] = True
            await asyncio.sleep(spread_delay(uid, resync / 2))
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

    # The server waits for the restore Job: its end (or its deletion, to retry) decides what comes next.
    @kopf.on.event(
        "batch", "v1", "jobs", registry=registry, id="restore-job", labels={RESTORE_LABEL: kopf.PRESENT}
    )
    async def restore_job_changed(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        assert namespace
        if labels.get(STORE_LABEL):
            await reconciler.reconcile_soon(namespace, labels[STORE_LABEL], trigger="child")

    # A store waiting to restore from a backup starts when that backup completes.
    @kopf.on.event(*BACKUPS, registry=registry, id="restore-source")
    async def backup_changed(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace
        for store in await context.kube.list(STORE, namespace):
            spec, status = store.get("spec") or {}, store.get("status") or {}
            source = ((spec.get("bootstrap") or {}).get("fromBackup") or {}).get("name")
            if source == name and status.get("restoredFrom") != name:
                await reconciler.reconcile_soon(namespace, store["metadata"]["name"], trigger="backup")
