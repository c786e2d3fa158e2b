"""MemoryPolicy handlers: a policy change re-reconciles the stores it selects and those it dropped."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.api.policy import MemoryPolicy
from memory_operator.controller import sync
from memory_operator.controller.cache import Cache
from memory_operator.controller.handlers import Context
from memory_operator.controller.policies import matched_stores

POLICIES = ("memory-operator.io", "v1alpha1", "memorypolicies")


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    @kopf.on.resume(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    async def policy_changed(body: kopf.Body, namespace: str | None, name: str, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        cache = await context.cache(kwargs)
        previous = set((body.get("status") or {}).get("matchedStores") or [])
        await sync.sync_policy(kube, cache, namespace, name)
        current = set(((cache.policy(namespace, name) or {}).get("status") or {}).get("matchedStores") or [])
        now_selected = current | _selected(body, cache, namespace)
        selected = {s["metadata"]["name"] for s in cache.stores(namespace)} & (previous | now_selected)
        for store_name in sorted(selected):
            await reconciler.reconcile(cache, namespace, store_name, trigger="policy")

    # A deleted policy leaves its stores (their CronJobs go); a run recorded in its status changes its
    # stores' `lastExpiration`.
    @kopf.on.event(*POLICIES, registry=registry, id="policy-event")
    async def policy_event(type: str, body: kopf.Body, namespace: str | None, **kwargs: Any) -> None:
        assert namespace, "a namespaced resource"
        if type is None:
            return  # the initial listing: the stores' own resume handlers reconcile them
        cache = await context.cache(kwargs)
        if type == "DELETED":
            context.diffbase.forget(str(body["metadata"].get("uid")))
        else:
            # A run recorded in `lastRuns` (another writer) changes the conditions this one owns.
            await sync.sync_policy(kube, cache, namespace, str(body["metadata"]["name"]))
        for store_name in (body.get("status") or {}).get("matchedStores") or []:
            await reconciler.reconcile_soon(cache, namespace, store_name, trigger="policy")


def _selected(body: kopf.Body, cache: Cache, namespace: str) -> set[str]:
    try:
        policy = MemoryPolicy.model_validate(dict(body))
    except ValueError:
        return set()
    return set(matched_stores(policy, cache.stores(namespace)))
