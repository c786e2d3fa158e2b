"""The finalizer a store's first reconcile puts on it is not asked for again while the watch lags."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controller.test_decide import store_body
from memory_operator import labels
from memory_operator.controller.cache import STORES, Cache
from memory_operator.controller.reconcile import Reconciler
from memory_operator.render import RenderSettings


class Kube:
    def __init__(self) -> None:
        self.finalizer_patches: list[Any] = []

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return {**manifest, "metadata": {**manifest["metadata"], "uid": manifest["metadata"]["name"]}}

    async def apply_unanswered(self, manifest: Mapping[str, Any]) -> None:
        return None

    async def apply_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    async def patch(self, resource: Any, namespace: str, name: str, patch: Any, **_: Any) -> dict[str, Any]:
        self.finalizer_patches.append(patch)
        return {}


def cache_of(body: dict[str, Any]) -> Cache:
    return Cache({STORES.index_id: {"agents": [body]}})


async def test_the_finalizer_is_patched_once_though_the_watch_has_not_shown_it_yet() -> None:
    kube = Kube()
    reconciler = Reconciler(kube, RenderSettings())  # type: ignore[arg-type]
    stale = store_body()
    stale["metadata"]["resourceVersion"] = "1"
    await reconciler.reconcile(cache_of(stale), "agents", "mem", trigger="create")
    assert len(kube.finalizer_patches) == 1
    # The watch still shows the store as it was: the finalizer is known, not patched again.
    await reconciler.reconcile(cache_of(stale), "agents", "mem", trigger="child")
    assert len(kube.finalizer_patches) == 1
    # Once the watch has shown it, a store without it has had it removed: it goes on again.
    shown = copy.deepcopy(stale)
    shown["metadata"]["finalizers"] = [labels.FINALIZER]
    await reconciler.reconcile(cache_of(shown), "agents", "mem", trigger="child")
    assert len(kube.finalizer_patches) == 1
    await reconciler.reconcile(cache_of(stale), "agents", "mem", trigger="child")
    assert len(kube.finalizer_patches) == 2
