"""Kube: API calls beyond the pool's threads wait for a slot, in the order made, holding no request."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

from memory_operator.controller.kube import API_CONCURRENCY, Kube


class BlockingApi:
    """An ApiClient whose calls block until released; records bodies and the calls in flight."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.started: list[str] = []
        self.bodies: list[Any] = []

    def call_api(self, path: str, method: str, *, body: Any = None, **_: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.started.append(path.rsplit("/", 1)[-1])
            self.bodies.append(body)
        self.release.wait(30)
        with self.lock:
            self.in_flight -= 1
        return {"metadata": {"name": path.rsplit("/", 1)[-1]}}


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}}


async def wait_for(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


async def test_calls_beyond_the_pool_wait_for_a_slot_in_the_order_they_were_made() -> None:
    api = BlockingApi()
    kube = Kube(api)  # type: ignore[arg-type]
    names = [f"cm-{i:03d}" for i in range(API_CONCURRENCY + 20)]
    manifests = [config_map(name) for name in names]
    calls = [asyncio.ensure_future(kube.apply(m)) for m in manifests]
    await wait_for(lambda: len(api.started) == API_CONCURRENCY)
    await asyncio.sleep(0.1)
    # The others wait for a slot, not in the pool's queue, where each would hold its request's copy.
    assert len(api.started) == API_CONCURRENCY
    assert kube._threads._work_queue.qsize() == 0
    # A waiting call's request is built when its turn comes, from its object as it is then.
    manifests[-1]["metadata"]["labels"] = {"late": "yes"}
    api.release.set()
    applied = await asyncio.gather(*calls)
    assert [a["metadata"]["name"] for a in applied] == names
    assert api.most_in_flight == API_CONCURRENCY
    assert sorted(api.started[:API_CONCURRENCY]) == names[:API_CONCURRENCY]
    assert sorted(api.started[API_CONCURRENCY:]) == names[API_CONCURRENCY:]
    last = next(b for b in api.bodies if b["metadata"]["name"] == names[-1])
    assert last["metadata"]["labels"] == {"late": "yes"}


async def test_a_request_is_sent_as_plain_json() -> None:
    api = BlockingApi()
    api.release.set()
    kube = Kube(api)  # type: ignore[arg-type]
    manifest = {
        **config_map("plain"),
        "data": types.MappingProxyType({"a": "1"}),
        "binaryData": None,
        "immutable": False,
        "list": ("x", "y"),
    }
    await kube.apply(manifest)
    (body,) = api.bodies
    assert body == {
        **config_map("plain"),
        "data": {"a": "1"},
        "binaryData": None,
        "immutable": False,
        "list": ["x", "y"],
    }
    assert type(body["data"]) is dict
    assert body is not manifest
