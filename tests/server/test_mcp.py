"""MCP over streamable HTTP with the official SDK's client: tools, per-path users, API keys."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer

pytestmark = pytest.mark.slow


async def call(
    server: LiveServer,
    user: str,
    tool: str,
    arguments: dict[str, Any],
    key: str = API_KEY,
    client_name: str = "claude",
) -> Any:
    """Call one tool as `user` from the client `claude`; returns its text (or the error text)."""
    url = f"{server.url}/mcp/{client_name}/http/{user}"
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool(tool, arguments)
    text = result.content[0].text  # type: ignore[union-attr]
    return ("error", text) if result.is_error else text


async def test_tools_are_listed(server: LiveServer, user: str) -> None:
    url = f"{server.url}/mcp/claude/http/{user}"
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
    assert tools == {
        "add_memories",
        "search_memory",
        "list_memories",
        "delete_memories",
        "delete_all_memories",
        "erase_user_memories",
    }


async def test_round_trip_and_isolation(server: LiveServer, user: str) -> None:
    alice, bob = f"{user}-alice", f"{user}-bob"
    added = json.loads(
        await call(server, alice, "add_memories", {"text": "Alice prefers dark mode in every editor"})
    )
    memory_id = added["results"][0]["id"]
    await call(server, bob, "add_memories", {"text": "Bob prefers light mode"})

    found = json.loads(await call(server, alice, "search_memory", {"query": "editor theme"}))["results"]
    assert found[0]["memory"] == "Alice prefers dark mode in every editor"
    assert all("Bob" not in r["memory"] for r in found)
    listed = json.loads(await call(server, alice, "list_memories", {}))
    assert [m["id"] for m in listed] == [memory_id]

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}) as rest:
        got = rest.get(f"/api/v1/memories/{memory_id}", params={"user_id": alice}).json()
    assert got["app_name"] == "claude", "the MCP client's name is the memory's app"

    refused = await call(server, bob, "delete_memories", {"memory_ids": [memory_id]})
    assert refused[0] == "error" and "not found" in refused[1]
    assert "1" in await call(server, alice, "delete_memories", {"memory_ids": [memory_id]})
    assert json.loads(await call(server, alice, "list_memories", {})) == []
    await call(server, bob, "delete_all_memories", {})
    assert json.loads(await call(server, bob, "list_memories", {})) == []


async def test_read_only_key_cannot_write(server: LiveServer, user: str) -> None:
    refused = await call(server, user, "add_memories", {"text": "should not be stored"}, key=READ_ONLY_KEY)
    assert refused[0] == "error" and "read-only" in refused[1]
    assert json.loads(await call(server, user, "list_memories", {}, key=READ_ONLY_KEY)) == []


def test_mcp_requires_a_key(server: LiveServer, user: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    for key in (None, "wrong"):
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.post(f"{server.url}/mcp/claude/http/{user}", json=body, headers={**headers, **auth})
        assert response.status_code == 401
