"""One reconcile of a MemoryStore: observe (the cache), decide (pure), act and report; and its release.

One reconcile at a time per store; a burst of events for a store costs one queued reconcile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from kubernetes.client.exceptions import ApiException

from memory_operator import labels
from memory_operator.api.store import DeletionPolicy
from memory_operator.controller import act, certificates, counting, decide, metrics, status
from memory_operator.controller.cache import Cache
from memory_operator.controller.child_events import ChildEvents
from memory_operator.controller.kube import BACKUP, PVC, STORE, Kube, namespace_terminating
from memory_operator.controller.snapshot import observe
from memory_operator.render import Credentials, RenderSettings

logger = logging.getLogger("memory_operator.controller")

# Stores reconciled at once, as controller-runtime's MaxConcurrentReconciles. A burst (hundreds of new
# stores, or every store when the operator starts) holds the objects and manifests of this many at a
# time. Enough that every store of a burst of a few hundred gets its first wave of children (their
# Services among them) applied before the pods of the first stores load the cluster: kube-apiserver
# allocates cluster IPs one at a time, several times slower while the controllers start those pods. 300
# new stores (two cores, a fresh control plane each run) converged in 41-53 s (mean 47, 8 runs) with 400
# at once, 64-66 s with 150 (the second 150 met the first ones' pods), 63 s with 50; resident memory
# after the quiet about the same (155-161 MB). `benchmarks/controller_scale.py --runs 3` with 400: 31.5-
# 36.4 s (mean 33.9) where the baseline took 21.7-24.5 (mean 23.1).
CONCURRENT_RECONCILES = 400
# An observation (a child's progress, the drift timer) waits while stores' own changes are reconciled
# (new or edited stores, or every store when the operator starts), at most this long: in a burst the
# new stores get their children first, and the progress of a store's workloads meanwhile costs one
# reconcile instead of one per step.
OBSERVATION_WAIT_SECONDS = 30.0


class Reconciler:
    """Converges stores; one reconcile at a time per store."""

    def __init__(
        self, kube: Kube, render_settings: RenderSettings, qdrant_url_template: str | None = None
    ) -> None:
        self.kube = kube
        self.render_settings = render_settings
        self.qdrant_url_template = qdrant_url_template
        self._locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        # Stores with a reconcile queued (not yet holding the store's lock), each with what ends the
        # wait of a queued observation: a reconcile asked for meanwhile.
        self._queued: dict[tuple[str, str], asyncio.Event] = {}
        self._slots = asyncio.Semaphore(CONCURRENT_RECONCILES)
        # Keys generated for a store until its Secrets show in the cache: a reconcile that runs before
        # the watch reports them renders the same keys, never new ones.
        self._fresh: dict[str, Credentials] = {}
        # Likewise the certificates minted for a store: the same ones until its Secrets show them.
        self._minters: dict[str, certificates.KeptMinter] = {}
        # Stores given the finalizer, by uid, until the watch shows it on them: in a burst the watch
        # lags by seconds, and a patch made from the older body would be refused.
        self._finalized: set[str] = set()
        # Which events of the stores' workloads and Jobs are worth a reconcile.
        self.child_events = ChildEvents()
        self._changes = 0
        # Reconciles run, and those under way (waiting for their store or a slot, or running): for the
        # memory trimmer (controller/memory.py).
        self.reconciles = 0
        self.under_way = 0
        self._no_changes = asyncio.Event()
        self._no_changes.set()

    def set_cert_manager(self, available: bool) -> bool:
        """Whether the cluster serves cert-manager's Certificates now; True when that changed."""
        if self.render_settings.cert_manager == available:
            return False
        logger.info("cert-manager's Certificates are %s", "served" if available else "no longer served")
        self.render_settings = dataclasses.replace(self.render_settings, cert_manager=available)
        return True

    @asynccontextmanager
    async def locked(self, namespace: str, name: str) -> AsyncIterator[None]:
        async with self._locks[(namespace, name)]:
            yield

    async def reconcile_soon(
        self,
        cache: Cache,
        namespace: str,
        name: str,
        *,
        trigger: str,
        settle: float = 0.0,
        observation: bool = False,
    ) -> None:
        """Reconcile unless a reconcile of the store is already waiting: bursts of events cost one. With
        `settle`, the reconcile waits that long first, so that the events of that window cost one too.
        An `observation` also waits while changes of stores are reconciled (OBSERVATION_WAIT_SECONDS)."""
        key = (namespace, name)
        queued = self._queued.get(key)
        if queued is not None:
            if not observation:
                queued.set()  # asked for now: a queued observation waits no more
            return
        asked = self._queued[key] = asyncio.Event()
        try:
            if settle:
                await asyncio.sleep(settle)
            if observation:
                await self._wait_for_changes(asked)
            await self.reconcile(
                cache, namespace, name, trigger=trigger, observation=observation, _queued=asked
            )
        finally:
            self._dequeue(key, asked)

    def _dequeue(self, key: tuple[str, str], queued: asyncio.Event | None) -> None:
        """This queued reconcile is under way (or done): later events queue another. Only this one: the
        store may have queued another since it started."""
        if queued is not None and self._queued.get(key) is queued:
            del self._queued[key]

    async def _wait_for_changes(self, asked: asyncio.Event) -> None:
        """Until no change of a store is being reconciled, a reconcile of this store is asked for, or
        OBSERVATION_WAIT_SECONDS have passed."""
        if self._no_changes.is_set():
            return
        waits = [asyncio.ensure_future(self._no_changes.wait()), asyncio.ensure_future(asked.wait())]
        try:
            await asyncio.wait(waits, timeout=OBSERVATION_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def reconcile(
        self,
        cache: Cache,
        namespace: str,
        name: str,
        *,
        trigger: str,
        observation: bool = False,
        _queued: asyncio.Event | None = None,
    ) -> str | None:
        """Converge one store; returns its phase, or `None` when it is gone or being deleted."""
        self.under_way += 1
        try:
            with contextlib.nullcontext() if observation else self._change():
                return await self._reconcile_locked(cache, namespace, name, trigger, _queued)
        finally:
            self.under_way -= 1

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """A reconcile of a store's own change is under way (or waiting): observations wait."""
        self._changes += 1
        self._no_changes.clear()
        try:
            yield
        finally:
            self._changes -= 1
            if not self._changes:
                self._no_changes.set()

    async def _reconcile_locked(
        self, cache: Cache, namespace: str, name: str, trigger: str, queued: asyncio.Event | None
    ) -> str | None:
        async with self.locked(namespace, name), self._slots:
            # Once the lock is held, later events must queue another reconcile: they may be newer.
            self._dequeue((namespace, name), queued)
            self.reconciles += 1
            started = time.monotonic()
            try:
                phase = await self._reconcile(cache, namespace, name, trigger)
            except ApiException as error:
                if not namespace_terminating(error):
                    metrics.RECONCILES.labels(result="error").inc()
                    raise
                logger.info("namespace %s is being deleted: not converging %s", namespace, name)
                phase = None
            except Exception:
                metrics.RECONCILES.labels(result="error").inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.observe(time.monotonic() - started)
        result = {"Failed": "invalid", "Paused": "paused", None: "gone"}.get(phase, "success")
        metrics.RECONCILES.labels(result=result).inc()
        metrics.PHASE_BOOK.record(namespace, name, phase)
        return phase

    async def _reconcile(self, cache: Cache, namespace: str, name: str, trigger: str) -> str | None:
        body = cache.store(namespace, name)
        if body is None:
            return None
        uid = str(body["metadata"].get("uid"))
        snap = observe(cache, self._with_known_finalizer(uid, body))
        now = status.now_rfc3339()
        minter = self._minters.setdefault(uid, certificates.KeptMinter())
        decision = decide.decide(snap, self.render_settings, self._fresh_keys(snap), now, minter)
        metrics.record_backups(namespace, name, *decision.backup_gauges)
        problem = await act.act(self.kube, namespace, decision, trigger, self.child_events.written)
        if decision.finalizer is not None:
            self._finalized.add(uid)
        if problem is not None:
            decision = decide.refuse(body, decide.previous_status(body), [problem], None, now)
        await act.report(self.kube, body, decision)
        return decision.phase

    def _with_known_finalizer(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        """The store with the finalizer this operator put on it, until the watch shows it (and once it
        does, a store without it has had it removed)."""
        finalizers = list(body["metadata"].get("finalizers") or [])
        if labels.FINALIZER in finalizers:
            self._finalized.discard(uid)
        elif uid in self._finalized:
            return {**body, "metadata": {**body["metadata"], "finalizers": [*finalizers, labels.FINALIZER]}}
        return body

    def _fresh_keys(self, snap: Any) -> Credentials:
        uid = str(snap.body["metadata"].get("uid"))
        own = [c for c in snap.children if c["kind"] == "Secret"]
        if own:
            return self._fresh.pop(uid, None) or Credentials.generate()
        return self._fresh.setdefault(uid, Credentials.generate())

    async def count(self, cache: Cache, namespace: str, name: str) -> None:
        """`status.memoryCount`, a field of its own writer: counted while Qdrant is ready."""
        body = cache.store(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        previous = decide.previous_status(body)
        if not status.is_true(previous.conditions, "VectorStoreReady"):
            return
        found = await counting.count_store(cache, body, self.qdrant_url_template)
        if found is not None and found != previous.memory_count:
            await self.kube.apply_status(
                STORE, namespace, name, {act.COUNT_FIELD: found}, counting.FIELD_MANAGER
            )

    async def release(self, cache: Cache, body: Mapping[str, Any]) -> None:
        """On deletion: keep (orphan and label) or delete the store's volumes and backups."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        policy = (body.get("spec") or {}).get("deletionPolicy", DeletionPolicy.Retain.value)
        async with self.locked(namespace, name):
            claims = [c for c in cache.children(namespace, name) if c["kind"] == "PersistentVolumeClaim"]
            backups = [
                b
                for b in cache.backups(namespace)
                if ((b.get("spec") or {}).get("storeRef") or {}).get("name") == name
            ]
            for resource, objs in ((PVC, claims), (BACKUP, backups)):
                for obj in objs:
                    await self._release_one(resource, namespace, name, obj, policy, meta["uid"])
        self._fresh.pop(str(meta.get("uid")), None)
        self._minters.pop(str(meta.get("uid")), None)
        self._finalized.discard(str(meta.get("uid")))
        metrics.PHASE_BOOK.record(namespace, name, None)
        metrics.record_backups(namespace, name, None, None)

    async def _release_one(
        self, resource: Any, namespace: str, store: str, obj: Mapping[str, Any], policy: str, uid: str
    ) -> None:
        obj_name = obj["metadata"]["name"]
        if policy == DeletionPolicy.Delete.value:
            logger.info("deleting %s %s/%s with its store", resource.kind, namespace, obj_name)
            await self.kube.delete(resource, namespace, obj_name)
            return
        logger.info("retaining %s %s/%s", resource.kind, namespace, obj_name)
        # Nothing that goes with the store may collect it: neither the store nor its StatefulSet.
        refs = [
            r
            for r in obj["metadata"].get("ownerReferences") or []
            if r.get("uid") != uid and r.get("kind") != "StatefulSet"
        ]
        await self.kube.patch(
            resource,
            namespace,
            obj_name,
            {"metadata": {"ownerReferences": refs, "labels": {labels.RETAINED_FROM: store}}},
        )
