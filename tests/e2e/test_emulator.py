"""The emulator's API semantics the operator relies on, and the finalizer escape hatch."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from e2e.emulator import Emulator
from e2e.harness import Client, start_emulator, store


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Emulator, Client]]:
    emulator, client = start_emulator()
    yield emulator, client
    emulator.stop()


def test_generation_moves_with_spec_only_and_status_is_separate(api: tuple[Emulator, Client]) -> None:
    _, client = api
    created = client.create(store("gen", "s1"))
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    client.patch("MemoryStore", "gen", "s1", {"metadata": {"labels": {"a": "b"}}, "status": {"phase": "X"}})
    obj = client.get("MemoryStore", "gen", "s1")
    assert obj is not None and obj["metadata"]["generation"] == 1 and "status" not in obj
    client.patch(
        "MemoryStore", "gen", "s1", {"status": {"phase": "Ready"}, "spec": {"paused": True}}, sub="status"
    )
    obj = client.get("MemoryStore", "gen", "s1")
    assert obj is not None and obj["status"] == {"phase": "Ready"} and "paused" not in obj["spec"]
    client.patch("MemoryStore", "gen", "s1", {"spec": {"paused": True}})
    obj = client.get("MemoryStore", "gen", "s1")
    assert obj is not None and obj["metadata"]["generation"] == 2


def test_no_op_write_keeps_resource_version(api: tuple[Emulator, Client]) -> None:
    _, client = api
    before = client.create(store("noop", "s1"))
    client.patch("MemoryStore", "noop", "s1", {"spec": {}})
    after = client.get("MemoryStore", "noop", "s1")
    assert after is not None and after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_server_side_apply_creates_merges_and_drops_unapplied_fields(api: tuple[Emulator, Client]) -> None:
    _, client = api
    path = client.path("ConfigMap", "ssa", "c")

    def apply(body: dict) -> httpx.Response:
        return client.http.patch(
            path,
            params={"fieldManager": "m", "force": "true"},
            json=body,
            headers={"Content-Type": "application/apply-patch+yaml"},
        )

    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ssa"}}
    assert apply({**base, "data": {"a": "1", "b": "2"}}).status_code == 200
    client.patch("ConfigMap", "ssa", "c", {"metadata": {"labels": {"other": "x"}}})
    apply({**base, "data": {"a": "1"}})
    obj = client.get("ConfigMap", "ssa", "c")
    assert obj is not None and obj["data"] == {"a": "1"} and obj["metadata"]["labels"] == {"other": "x"}


def test_label_selectors(api: tuple[Emulator, Client]) -> None:
    _, client = api
    client.create(store("sel", "a", {"tier": "gold"}))
    client.create(store("sel", "b", {"tier": "silver"}))
    names = lambda sel: [o["metadata"]["name"] for o in client.list("MemoryStore", "sel", sel)]  # noqa: E731
    assert names("tier=gold") == ["a"]
    assert names("tier in (gold,silver)") == ["a", "b"]
    assert names("tier!=gold") == ["b"]
    assert names("!tier") == []


def test_owner_garbage_collection(api: tuple[Emulator, Client]) -> None:
    _, client = api
    owner = client.create(store("gc", "owner"))
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": "MemoryStore",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    client.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "child", "namespace": "gc", "ownerReferences": [ref]},
        }
    )
    client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "free", "namespace": "gc"}})
    client.delete("MemoryStore", "gc", "owner")
    assert client.get("ConfigMap", "gc", "child") is None
    assert client.get("ConfigMap", "gc", "free") is not None


def test_finalizer_escape_hatch_without_operator(api: tuple[Emulator, Client]) -> None:
    """A store keeping an operator finalizer, with no operator running: removing it by hand frees it."""
    _, client = api
    body = store("stuck", "s1")
    body["metadata"]["finalizers"] = ["memory-operator.io/finalizer"]
    client.create(body)
    client.delete("MemoryStore", "stuck", "s1")
    marked = client.get("MemoryStore", "stuck", "s1")
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    # kubectl patch memorystore s1 --type=merge -p '{"metadata":{"finalizers":null}}'
    client.patch("MemoryStore", "stuck", "s1", {"metadata": {"finalizers": None}})
    assert client.get("MemoryStore", "stuck", "s1") is None


def test_watch_resumes_from_resource_version(api: tuple[Emulator, Client]) -> None:
    _, client = api
    first = client.create(store("watch", "w1"))
    client.create(store("watch", "w2"))
    with client.http.stream(
        "GET",
        client.path("MemoryStore", "watch"),
        params={
            "watch": "true",
            "resourceVersion": first["metadata"]["resourceVersion"],
            "timeoutSeconds": "1",
        },
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert len(lines) == 1 and '"w2"' in lines[0] and '"ADDED"' in lines[0]


def test_statefulset_claim_templates_and_claim_shrinks_are_refused(api: tuple[Emulator, Client]) -> None:
    _, client = api
    template = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}
    client.create(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "q", "namespace": "imm"},
            "spec": {"replicas": 1, "volumeClaimTemplates": [template]},
        }
    )
    client.patch("StatefulSet", "imm", "q", {"spec": {"replicas": 3}})
    bigger = {**template, "spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.patch("StatefulSet", "imm", "q", {"spec": {"volumeClaimTemplates": [bigger]}})
    assert refused.value.response.status_code == 422
    client.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-q-0", "namespace": "imm"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
        }
    )
    client.patch(
        "PersistentVolumeClaim", "imm", "data-q-0", {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    )
    with pytest.raises(httpx.HTTPStatusError) as shrink:
        client.patch(
            "PersistentVolumeClaim",
            "imm",
            "data-q-0",
            {"spec": {"resources": {"requests": {"storage": "1Gi"}}}},
        )
    assert shrink.value.response.status_code == 422
