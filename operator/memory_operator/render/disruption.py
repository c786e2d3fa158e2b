"""PodDisruptionBudgets: drains take one Qdrant node (or server pod) at a time, when there are several."""

from __future__ import annotations

from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import meta, names, qdrant, server
from memory_operator.render.meta import Manifest


def _budget(store: MemoryStore, name: str, app: str, component: str, selector: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta.metadata(store, name, app, component),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector},
            # A pod that never became ready may be evicted even when the budget is spent.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render(store: MemoryStore) -> list[Manifest]:
    budgets = []
    if store.spec.vector_store.replicas > 1:
        budgets.append(
            _budget(
                store,
                names.qdrant_disruption_budget_name(store),
                meta.QDRANT,
                meta.VECTOR_STORE,
                qdrant.selector(store),
            )
        )
    if store.spec.server.flavor == ServerFlavor.builtin and store.spec.server.replicas > 1:
        budgets.append(
            _budget(
                store,
                names.server_disruption_budget_name(store),
                meta.SERVER,
                meta.SERVER_COMPONENT,
                server.selector(store),
            )
        )
    return budgets
