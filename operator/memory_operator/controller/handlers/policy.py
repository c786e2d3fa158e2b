"""MemoryPolicy handlers: a policy change re-reconciles the stores it selects and those it dropped."""

from __future__ import annotations

from typing import Any

import kopf

from memory_operator.api.common import GROUP, VERSION
from memory_operator.api.policy import MemoryPolicy
from memory_operator.controller import status
from memory_operator.controller.handlers import Context
from memory_operator.controller.kube import POLICY, STORE

POLICIES = (GROUP, VERSION, "memorypolicies")


def register(registry: kopf.OperatorRegistry, context: Context) -> None:
    kube, reconciler = context.kube, context.reconciler

    @kopf.on.resume(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.create(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    @kopf.on.update(*POLICIES, registry=registry, retries=10, backoff=5, timeout=600)
    async def policy_changed(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> None:
        assert namespace
        policy = MemoryPolicy.model_validate(dict(body))
        stores = await kube.list(STORE, namespace)
        matched = sorted(
            s["metadata"]["name"]
            for s in stores
            if not s["metadata"].get("deletionTimestamp")
            and policy.spec.selector.matches(s["metadata"].get("labels") or {})
        )
        previous = dict(body.get("status") or {})
        for store_name in sorted(set(matched) | set(previous.get("matchedStores") or [])):
            await reconciler.reconcile(namespace, store_name, trigger="policy")
        generation = body["metadata"].get("generation")
        ready = status.condition(
            "Ready",
            True,
            "Applied",
            f"selects {len(matched)} store(s)" + (" (suspended)" if policy.spec.suspend else ""),
            generation,
        )
        # Only the fields this handler owns: `lastRuns` is written by the job results, concurrently.
        new = {
            "matchedStores": matched,
            "observedGeneration": generation,
            "conditions": status.merge_conditions(
                previous.get("conditions") or [], [ready], status.now_rfc3339()
            ),
        }
        if status.changed({k: previous.get(k) for k in new}, new):
            await kube.patch_status(POLICY, namespace, name, new)

    @kopf.on.event(*POLICIES, registry=registry)
    async def policy_deleted(type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        assert namespace
        if type != "DELETED":
            return
        for store_name in (body.get("status") or {}).get("matchedStores") or []:
            await reconciler.reconcile_soon(namespace, store_name, trigger="policy")
