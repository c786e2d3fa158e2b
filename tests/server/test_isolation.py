"""Property: a memory written for scope id A is never returned, changed or deleted through id B != A.

For generated ids (valid ones, near-misses of A that mem0 or Qdrant could normalise or read as a
pattern, and arbitrary text), every route is asked as B: OpenMemory REST, mem0 REST (user, agent
and run ids) and the MCP tools. A valid B sees nothing of A's; an invalid B is refused (422, or 404
where the id cannot even form the MCP path). Afterwards A's memory is still there, unchanged.
"""

from __future__ import annotations

import contextlib
import json
import string
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memory_operator.server.scope_id import SCOPE_ID_PATTERN, is_scope_id

from .conftest import LiveServer

pytestmark = pytest.mark.slow
MEMORIES = "/api/v1/memories/"
SCOPE_FIELDS = ("user_id", "agent_id", "run_id")

scope_ids = st.from_regex(SCOPE_ID_PATTERN.replace("{0,252}", "{0,24}"), fullmatch=True)


def near_misses(a: str) -> st.SearchStrategy[str]:
    """Ids a lower layer could confuse with A: case, whitespace and controls around it, wildcards,
    look-alike characters, prefixes."""
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in a)
    return st.sampled_from(
        [
            a.upper(),
            a.lower(),
            a.swapcase(),
            f" {a}",
            f"{a} ",
            f"{a}\n",
            f"\t{a}",
            f"\x1c{a}",
            f"{a}\x1f",
            f"{a}\u00a0",
            f"{a}\u200b",
            "*",
            f"{a}*",
            a[:-1] or "*",
            f"{a}.",
            fullwidth,
            f"{a}\x00",
        ]
    )


other_ids = st.text(alphabet=st.sampled_from(string.printable + "\x1c\x85\u2028*é"), max_size=12)


@st.composite
def id_pairs(draw: st.DrawFn) -> tuple[str, str]:
    a = draw(scope_ids)
    b = draw(st.one_of(scope_ids, near_misses(a), other_ids))
    assume(a != b)
    return a, b


class Client:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = server.client()

    def mcp(self, user: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        return self.http.post(
            f"/mcp/claude/http/{quote(user, safe='')}",
            json=request,
            headers={"Accept": "application/json, text/event-stream"},
        )


def ids_in(value: Any) -> set[str]:
    """Every memory id anywhere in a JSON answer (results, items, MCP tool text)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("id"), str):
                found.add(item["id"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and item[:1] in "[{":
            with contextlib.suppress(ValueError):
                pending.append(json.loads(item))
    return found


def expect_refused_or_empty(response: httpx.Response, b_is_valid: bool, memory_id: str, what: str) -> None:
    if b_is_valid:
        assert response.status_code in (200, 404), (what, response.status_code, response.text)
        assert memory_id not in ids_in(response.json()), f"{what} returned A's memory"
    else:
        assert response.status_code == 422, (what, response.status_code, response.text)


def expect_mcp_refused_or_empty(response: httpx.Response, b: str, memory_id: str, what: str) -> None:
    if is_scope_id(b):
        assert response.status_code == 200, (what, response.text)
        assert memory_id not in ids_in(response.json()), f"{what} returned A's memory"
    elif "/" in b or not b:
        assert response.status_code in (404, 422), (what, response.status_code)  # no such path
    else:
        assert response.status_code == 422, (what, response.status_code, response.text)


def expect_not_changed(response: httpx.Response, b_is_valid: bool, what: str) -> None:
    expected = 404 if b_is_valid else 422
    assert response.status_code == expected, (what, response.status_code, response.text)


TEXT = "the vault combination is 31-07-42"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=id_pairs())
def test_no_route_crosses_scope_ids(server: LiveServer, pair: tuple[str, str]) -> None:
    a, b = pair
    valid = is_scope_id(b)
    client = Client(server)
    http = client.http
    added = http.post("/memories", json={"messages": TEXT, "user_id": a, "agent_id": a, "run_id": a})
    assert added.status_code == 200, added.text
    memory_id = added.json()["results"][0]["id"]
    # The control: as A, every reading route finds it (so the checks below can fail).
    assert memory_id in ids_in(http.post("/search", json={"query": TEXT, "user_id": a}).json())
    assert memory_id in ids_in(client.mcp(a, "search_memory", {"query": TEXT}).json())

    # OpenMemory REST, as user B.
    expect_refused_or_empty(http.get(MEMORIES, params={"user_id": b}), valid, memory_id, "list")
    expect_refused_or_empty(
        http.post(f"{MEMORIES}filter", json={"user_id": b, "show_archived": True}), valid, memory_id, "filter"
    )
    expect_not_changed(http.get(f"{MEMORIES}{memory_id}", params={"user_id": b}), valid, "get")
    expect_not_changed(
        http.put(f"{MEMORIES}{memory_id}", json={"user_id": b, "memory_content": "overwritten"}), valid, "put"
    )
    expect_not_changed(
        http.request("DELETE", MEMORIES, json={"memory_ids": [memory_id], "user_id": b}), valid, "delete"
    )
    expect_not_changed(
        http.post(f"{MEMORIES}actions/archive", json={"memory_ids": [memory_id], "user_id": b}),
        valid,
        "archive",
    )
    expect_not_changed(
        http.post(f"{MEMORIES}actions/pause", json={"memory_ids": [memory_id], "user_id": b}), valid, "pause"
    )
    paused_all = http.post(f"{MEMORIES}actions/pause", json={"user_id": b, "global_pause": True})
    assert paused_all.status_code == (200 if valid else 422), paused_all.text

    # mem0 REST, as B in each scope field.
    for field in SCOPE_FIELDS:
        scope = {field: b}
        expect_refused_or_empty(
            http.post("/search", json={"query": TEXT, **scope}), valid, memory_id, f"search {field}"
        )
        expect_refused_or_empty(http.get("/memories", params=scope), valid, memory_id, f"list {field}")
        expect_not_changed(http.get(f"/memories/{memory_id}", params=scope), valid, f"get {field}")
        expect_not_changed(http.delete(f"/memories/{memory_id}", params=scope), valid, f"delete {field}")

    # MCP, as user B in the path.
    expect_mcp_refused_or_empty(client.mcp(b, "search_memory", {"query": TEXT}), b, memory_id, "mcp search")
    expect_mcp_refused_or_empty(client.mcp(b, "list_memories", {}), b, memory_id, "mcp list")
    deleted = client.mcp(b, "delete_memories", {"memory_ids": [memory_id]})
    expect_mcp_refused_or_empty(deleted, b, memory_id, "mcp delete")
    if deleted.status_code == 200:
        assert deleted.json()["result"]["isError"], "deleting A's memory as B must fail"
    expect_mcp_refused_or_empty(client.mcp(b, "delete_all_memories", {}), b, memory_id, "mcp delete all")

    # A's memory is still there, unchanged and active.
    kept = http.get(f"{MEMORIES}{memory_id}", params={"user_id": a})
    assert kept.status_code == 200, kept.text
    assert (kept.json()["content"], kept.json()["state"]) == (TEXT, "active")
    http.close()
