"""Status writers racing on a real API server lose nothing: each owns its fields (server-side apply)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client, config

from memory_operator.controller import policies, status
from memory_operator.controller.kube import POLICY, Kube
from support.controlplane import ControlPlane

pytestmark = pytest.mark.slow


@pytest.fixture
def kube(api_server: ControlPlane) -> Kube:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(api_server.admin_kubeconfig), client_configuration=configuration)
    return Kube(client.ApiClient(configuration))


def run(store: str, deleted: int) -> dict[str, Any]:
    return {
        "store": store,
        "time": f"2026-01-02T03:{deleted % 60:02d}:00Z",
        "deleted": deleted,
        "succeeded": True,
    }


async def test_concurrent_runs_and_the_policy_reconcile_keep_every_entry(
    api_server: ControlPlane, kube: Kube
) -> None:
    api_server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "racing"}})
    policy = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryPolicy",
        "metadata": {"name": "ttl", "namespace": "racing"},
        "spec": {"rules": [{"name": "old", "maxAge": "7d"}]},
    }
    api_server.request("POST", "/apis/memory-operator.io/v1alpha1/namespaces/racing/memorypolicies", policy)
    stores = [f"store-{i}" for i in range(20)]
    owned = {
        "matchedStores": stores,
        "observedGeneration": 1,
        "conditions": [
            status.condition("Ready", True, "Applied", "selects 20", 1).model_dump(
                by_alias=True, exclude_none=True
            )
        ],
    }

    async def write_run(store: str, deleted: int) -> None:
        await kube.apply_status(
            POLICY, "racing", "ttl", {"lastRuns": [run(store, deleted)]}, policies.run_manager(store)
        )

    await asyncio.gather(
        *(write_run(s, i) for i, s in enumerate(stores)),
        kube.apply_status(POLICY, "racing", "ttl", owned),
        *(write_run(s, i + 1) for i, s in enumerate(stores[:5])),
    )
    got = api_server.get("/apis/memory-operator.io/v1alpha1/namespaces/racing/memorypolicies/ttl/status")
    assert got is not None
    runs = {r["store"]: r["deleted"] for r in got["status"]["lastRuns"]}
    assert sorted(runs) == sorted(stores)
    assert all(runs[s] in (i, i + 1) for i, s in enumerate(stores))
    assert got["status"]["matchedStores"] == stores
    assert [c["type"] for c in got["status"]["conditions"]] == ["Ready"]
    # The policy's reconcile applying its fields again takes nothing of the runs.
    await kube.apply_status(POLICY, "racing", "ttl", {**owned, "matchedStores": stores[:3]})
    again = api_server.get("/apis/memory-operator.io/v1alpha1/namespaces/racing/memorypolicies/ttl/status")
    assert again is not None and len(again["status"]["lastRuns"]) == 20
