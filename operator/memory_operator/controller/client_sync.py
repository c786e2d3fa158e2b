"""A MemoryClient's reconcile: read the cache, decide (controller/clients.py), write what changed.

Writes: the client's Secret (server-side apply, owned by the MemoryClient), its status (its own field
manager) and Events. A key is generated when the client has no Secret, and kept until the watch shows
the Secret with it, so that a second reconcile before then writes the same key, never another.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from memory_operator.controller import certificates, clients, grants, status
from memory_operator.controller.act import post
from memory_operator.controller.cache import Cache
from memory_operator.controller.kube import CLIENT, Kube, namespace_terminating
from memory_operator.render import clients as render_clients
from memory_operator.render import names

logger = logging.getLogger("memory_operator.controller")


class ClientSync:
    """Converges MemoryClients; one reconcile at a time per client."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._locks: dict[tuple[str, str], asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._fresh: dict[str, str] = {}
        # The store each client named when last seen: a client moved to another store leaves the
        # first one's clients file too.
        self.stores: dict[tuple[str, str], str] = {}
        # Each store's TLS settings when last seen: a change makes its clients' URLs and CA bundle.
        self.store_tls: dict[tuple[str, str], Any] = {}
        # The status each client was last given, with the resourceVersion it replaced, until the cache
        # shows the write: the syncs of a burst of events must not write it again from a cache that
        # has not seen it yet.
        self._written: dict[tuple[str, str], tuple[str | None, dict[str, Any]]] = {}

    def store_tls_changed(self, namespace: str, store: str, tls: Any) -> bool:
        """Whether a store's `spec.tls` differs from when it was last seen (it is remembered)."""
        key = (namespace, store)
        changed = key in self.store_tls and self.store_tls[key] != tls
        self.store_tls[key] = tls
        return changed

    async def sync(self, cache: Cache, namespace: str, name: str) -> None:
        async with self._locks[(namespace, name)]:
            try:
                await self._sync(cache, namespace, name)
            except ApiException as error:
                if not namespace_terminating(error):
                    raise
                logger.info("namespace %s is being deleted: not converging MemoryClient %s", namespace, name)

    async def sync_store(self, cache: Cache, namespace: str, store: str) -> None:
        """Every client of a store; one client's failure leaves the others to sync."""
        for client in cache.clients(namespace):
            if (client.get("spec") or {}).get("store") != store:
                continue
            name = client["metadata"]["name"]
            try:
                await self.sync(cache, namespace, name)
            except ApiException as error:
                logger.warning(
                    "MemoryClient %s/%s not synced: %s %s", namespace, name, error.status, error.reason
                )

    async def _sync(self, cache: Cache, namespace: str, name: str) -> None:
        body = self._with_own_write(namespace, name, cache.client(namespace, name))
        if body is None:
            return
        store_name = str((body.get("spec") or {}).get("store") or "")
        secret = cache.secret(namespace, names.client_secret_name(name))
        store = cache.store(namespace, store_name) if store_name else None
        clients_secret = ca_bundle = None
        if store_name:
            named = render_clients.store_named(namespace, store_name)
            clients_secret = cache.secret(namespace, names.clients_secret_name(named))
            served = clients.served_store(store)
            if served is not None and served.spec.tls_enabled:
                tls_secret = cache.secret(namespace, names.tls_secret_name(served))
                ca_bundle = certificates.ca_bundle(tls_secret)
        decision = clients.decide_client(
            body,
            store=store,
            secret=secret,
            clients_secret=clients_secret,
            fresh_key=self._fresh_key(str(body["metadata"].get("uid")), secret),
            now=status.now_rfc3339(),
            ca_bundle=ca_bundle,
        )
        if decision.secret is not None:
            rotated = "" if secret is not None else " (new key)"
            secret_name = names.client_secret_name(name)
            logger.info("applying Secret %s/%s of MemoryClient %s%s", namespace, secret_name, name, rotated)
            await self.kube.apply(decision.secret)
        if decision.status is not None:
            written = await self.kube.apply_status(
                CLIENT, namespace, name, decision.status, clients.FIELD_MANAGER
            )
            if written is not None:
                replaced = body["metadata"].get("resourceVersion")
                self._written[(namespace, name)] = (replaced, dict(written.get("status") or {}))
        for event in decision.events:
            post(event)

    def _with_own_write(
        self, namespace: str, name: str, body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The cached client, with the status last written in place of the one that write replaced."""
        written = self._written.get((namespace, name))
        if body is None or written is None:
            return body
        replaced, new_status = written
        if body["metadata"].get("resourceVersion") != replaced:  # the cache has seen the write (or newer)
            del self._written[(namespace, name)]
            return body
        return {**body, "status": new_status}

    def _fresh_key(self, uid: str, secret: Mapping[str, Any] | None) -> str:
        """The key for a client whose Secret has none: the same one until the Secret shows with it."""
        live = grants.secret_value(secret, render_clients.KEY)
        if live:
            self._fresh.pop(uid, None)
            return live
        return self._fresh.setdefault(uid, clients.generate_key())

    def forget(self, namespace: str, name: str, uid: str | None) -> None:
        self.stores.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        self._written.pop((namespace, name), None)
        if uid:
            self._fresh.pop(uid, None)
