"""Counting a store's memories: the URL, the request, and failures that leave no trace of the key."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from e2e.fake_count import FakeCount
from memory_operator.api.store import MemoryStore
from memory_operator.controller import counting
from support.controlplane import free_port

KEY = "qdrant-5ecret-key"


@pytest.fixture
def fake() -> Iterator[FakeCount]:
    server = FakeCount().start()
    try:
        yield server
    finally:
        server.stop()


def make_store() -> MemoryStore:
    return MemoryStore.model_validate({"metadata": {"name": "mem", "namespace": "agents"}})


def test_base_url_is_the_service_unless_a_template_is_given() -> None:
    store = make_store()
    assert counting.qdrant_base_url(store, None) == "http://mem-qdrant.agents.svc:6333"
    assert counting.qdrant_base_url(store, "http://127.0.0.1:9/{namespace}/{name}/") == (
        "http://127.0.0.1:9/agents/mem"
    )


async def test_counts_exactly_with_the_api_key(fake: FakeCount) -> None:
    entry = fake.set("agents", "mem", 42, api_key=KEY)
    assert await counting.count_points(fake.url + "/agents/mem", "memories", KEY) == 42
    assert entry.requests == [{"body": {"exact": True}, "api-key": KEY}]


@pytest.mark.parametrize("problem", ["server-error", "wrong-key", "unknown-store"])
async def test_failures_give_none_and_never_log_the_key(
    fake: FakeCount, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.set("agents", "mem", None if problem == "server-error" else 3, api_key="other-key")
    store = "nope" if problem == "unknown-store" else "mem"
    key = "other-key" if problem == "server-error" else KEY
    with caplog.at_level(logging.DEBUG):
        assert await counting.count_points(f"{fake.url}/agents/{store}", "memories", key) is None
    assert "could not count" in caplog.text
    assert key not in caplog.text


async def test_unreachable_qdrant_gives_none_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert await counting.count_points(url, "memories", KEY, timeout=1.0) is None
