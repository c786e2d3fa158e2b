"""MemoryClient handlers: event handlers only (Kopf keeps no state on the objects, so needs no patch).

A client's reconcile runs when the client, its Secret, its store or its store's clients Secret
changes; the store's reconcile (which renders the clients Secret) runs when a client or a client's
Secret changes.
"""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator import labels
from memory_operator.api.common import GROUP, VERSION
from memory_operator.controller.cache import Cache
from memory_operator.controller.handlers import Context
from memory_operator.render import clients as render_clients
from memory_operator.render import names

CLIENTS = (GROUP, VERSION, "memoryclients")
STORES = (GROUP, VERSION, "memorystores")


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    reconciler = context.reconciler
    sync = context.clients

    async def reconcile_stores(cache: Cache, namespace: str, stores: set[str]) -> None:
        for store in sorted(s for s in stores if s and cache.store(namespace, s) is not None):
            await reconciler.reconcile_soon(cache, namespace, store, trigger="client")

    @kopf.on.event(*CLIENTS, registry=registry, id="client")
    async def client_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        store = str((body.get("spec") or {}).get("store") or "")
        previous = sync.stores.get((namespace, name))
        if type == "DELETED":
            sync.forget(namespace, name, body["metadata"].get("uid"))
        else:
            sync.stores[(namespace, name)] = store
            await sync.sync(cache, namespace, name)
        if type is not None:  # the initial listing: the stores' own resume handlers reconcile them
            await reconcile_stores(cache, namespace, {store, previous or ""})

    # The client's Secret: made, changed or deleted (a deleted one is made again with a new key).
    @kopf.on.event(
        "", "v1", "secrets", registry=registry, id="client-secret", labels={labels.CLIENT: kopf.PRESENT}
    )
    async def client_secret_changed(
        type: str | None, namespace: str | None, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        client = cache.client(namespace, labels[_CLIENT])
        if client is None:
            return
        await sync.sync(cache, namespace, client["metadata"]["name"])
        if type is not None:
            await reconcile_stores(cache, namespace, {str((client.get("spec") or {}).get("store") or "")})

    # A store's certificate Secret (a new CA bundle: its clients get it) or the Secret of its clients as
    # its servers read them (its clients may be admitted now). One handler for both: every Secret of
    # every store passes it.
    @kopf.on.event(
        "", "v1", "secrets", registry=registry, id="store-secret", labels={labels.STORE: kopf.PRESENT}
    )
    async def store_secret_changed(
        namespace: str | None, name: str, labels: kopf.Labels, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        store = labels[_STORE]
        stand_in = render_clients.store_named(namespace, store)
        if name in (names.tls_secret_name(stand_in), names.clients_secret_name(stand_in)):
            await sync.sync_store(await context.cache(kwargs), namespace, store)

    # A store made or deleted: its clients' `StoreNotFound` comes or goes.
    @kopf.on.event(*STORES, registry=registry, id="store-clients")
    async def store_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        assert namespace, "a namespaced resource"
        appeared_or_went = type in ("ADDED", "DELETED") or bool(body["metadata"].get("deletionTimestamp"))
        # TLS turned on or off, or its certificate source changed: the clients' URLs and CA bundle.
        tls = (body.get("spec") or {}).get("tls")
        if sync.store_tls_changed(namespace, name, tls) or appeared_or_went:
            await sync.sync_store(await context.cache(kwargs), namespace, name)


_CLIENT, _STORE = labels.CLIENT, labels.STORE
