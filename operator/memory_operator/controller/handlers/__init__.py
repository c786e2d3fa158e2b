"""Kopf handlers: thin functions that register with a registry and delegate to the controller logic."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kopf._core.engines import posting

from memory_operator.controller import cache
from memory_operator.controller.cache import Cache
from memory_operator.controller.client_sync import ClientSync
from memory_operator.controller.informer import Informers
from memory_operator.controller.kube import Kube
from memory_operator.controller.peering import Peering
from memory_operator.controller.reconcile import Reconciler
from memory_operator.controller.settings import KeptDiffBaseStorage, Options, kept_diffbase
from memory_operator.render import RenderSettings


@dataclass(frozen=True)
class Context:
    kube: Kube
    reconciler: Reconciler
    clients: ClientSync
    render_settings: RenderSettings
    options: Options
    # Among replicas: which one runs the operator's own loops (None: alone).
    peering: Peering | None = None
    # Most children, kept by the operator's own streams (started at startup).
    informers: Informers = field(default_factory=lambda: Informers(cache.INFORMED))
    # Kopf's indexes as the first handler got them (live: Kopf keeps them current), for the work that
    # does not run in a Kopf handler (the stores' timers, the reactions to workloads' events).
    kopf_indexes: dict[str, Any] = field(default_factory=dict)
    kopf_indexed: asyncio.Event = field(default_factory=asyncio.Event)
    # Kopf's queue of Events (and its loop) as the first handler had them, for that work's Events.
    kopf_posting: list[Any] = field(default_factory=list)
    # What Kopf last handled of each store and policy (Kopf's settings use it; gone objects leave it).
    diffbase: KeptDiffBaseStorage = field(default_factory=kept_diffbase)

    async def cache(self, kwargs: Mapping[str, Any]) -> Cache:
        """What a handler reads: Kopf's indexes from its keyword arguments, and the informed kinds once
        listed (a reconcile never mistakes a child not yet listed for a missing one)."""
        if not self.kopf_indexed.is_set():
            # Kopf runs no handler before its indexes are filled.
            self.kopf_indexes.update(Cache.of(kwargs).indexes)
            self.kopf_posting.extend(var.get(None) for var in _KOPF_POSTING)
            self.kopf_indexed.set()
        await self.informers.listed()
        return Cache.of(kwargs, self.informers.indexes)

    async def cache_now(self) -> Cache:
        """What work outside Kopf's handlers reads: the same, once a handler has shown Kopf's indexes
        filled (before that, a store's Secrets could seem missing and new keys be made). The calling
        task may post Events from then on, as a handler does."""
        await self.kopf_indexed.wait()
        for var, value in zip(_KOPF_POSTING, self.kopf_posting, strict=True):
            if value is not None:
                var.set(value)
        await self.informers.listed()
        return Cache.of(self.kopf_indexes, self.informers.indexes)


# Where `kopf.info` and `kopf.warn` queue Events: Kopf sets these in each object's task only.
_KOPF_POSTING: tuple[contextvars.ContextVar[Any], ...] = (
    posting.event_queue_loop_var,
    posting.event_queue_var,
)


def register_all(registry: kopf.OperatorRegistry, context: Context) -> None:
    from memory_operator.controller.handlers import backup, client, erasure, operator, policy, store

    cache.register(registry)
    operator.register(registry, context)
    store.register(registry, context)
    policy.register(registry, context)
    backup.register(registry, context)
    client.register(registry, context)
    erasure.register(registry, context)
