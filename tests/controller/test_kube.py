"""Kube: API calls beyond the pool's threads wait for a slot, in the order made, holding no request; an
apply's body goes as JSON text encoded once, its answer parsed only when asked for."""

from __future__ import annotations

import asyncio
import json
import threading
import types
from typing import Any

from memory_operator.controller.kube import API_CONCURRENCY, APPLY_TEXT, MERGE, STORE, Kube
from support.waiting import eventually


class BlockingApi:
    """An ApiClient whose calls block until released; records bodies and the calls in flight."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.started: list[str] = []
        self.bodies: list[Any] = []
        self.content_types: list[str] = []
        self.answer_types: list[dict[int, str]] = []

    def call_api(
        self,
        path: str,
        method: str,
        *,
        body: Any = None,
        header_params: dict[str, str],
        response_types_map: dict[int, str],
        **_: Any,
    ) -> dict[str, Any] | None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.started.append(path.rsplit("/", 1)[-1])
            self.bodies.append(body)
            self.content_types.append(header_params["Content-Type"])
            self.answer_types.append(response_types_map)
        self.release.wait(30)
        with self.lock:
            self.in_flight -= 1
        # As the client: a status the map does not name deserializes to nothing.
        return {"metadata": {"name": path.rsplit("/", 1)[-1]}} if response_types_map.get(200) else None


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}}


async def test_calls_beyond_the_pool_wait_for_a_slot_in_the_order_they_were_made() -> None:
    api = BlockingApi()
    kube = Kube(api)  # type: ignore[arg-type]
    names = [f"cm-{i:03d}" for i in range(API_CONCURRENCY + 20)]
    manifests = [config_map(name) for name in names]
    calls = [asyncio.ensure_future(kube.apply(m)) for m in manifests]
    await eventually(lambda: len(api.started) == API_CONCURRENCY)
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
    last = next(b for b in map(json.loads, api.bodies) if b["metadata"]["name"] == names[-1])
    assert last["metadata"]["labels"] == {"late": "yes"}


async def test_an_apply_is_sent_as_json_text_and_its_answer_parsed_only_when_asked_for() -> None:
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
    assert await kube.apply(manifest) == {"metadata": {"name": "plain"}}
    assert await kube.apply_unanswered(manifest) is None  # type: ignore[func-returns-value]
    assert api.content_types == [APPLY_TEXT, APPLY_TEXT]
    assert api.answer_types[0] and not api.answer_types[1]
    for body in api.bodies:
        assert isinstance(body, bytes)
        assert json.loads(body) == {
            **config_map("plain"),
            "data": {"a": "1"},
            "binaryData": None,
            "immutable": False,
            "list": ["x", "y"],
        }


async def test_any_other_body_is_sent_as_plain_json_values() -> None:
    api = BlockingApi()
    api.release.set()
    kube = Kube(api)  # type: ignore[arg-type]
    patch = {"metadata": {"labels": types.MappingProxyType({"a": "1"})}, "list": ("x",)}
    await kube.patch(STORE, "ns", "one", patch)
    (body,) = api.bodies
    assert body == {"metadata": {"labels": {"a": "1"}}, "list": ["x"]}
    assert type(body["metadata"]["labels"]) is dict
    assert api.content_types == [MERGE]
