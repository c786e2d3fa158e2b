"""MCP over SSE at OpenMemory's paths (`/mcp/{client}/sse/{user}`, messages at `/mcp/messages/`),
with the official SDK's SSE client: tools, users, keys, and sessions bound to the key that opened them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client

from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer, ServerThread, local_settings, wait_until

pytestmark = pytest.mark.slow
OPENMEMORY_TOOLS = {
    "add_memories",
    "search_memory",
    "list_memories",
    "delete_memories",
    "delete_all_memories",
    "erase_user_memories",
}


async def sse_call(
    server: LiveServer,
    user: str,
    calls: list[tuple[str, dict[str, Any]]],
    headers: dict[str, str] | None = None,
    client_name: str = "cursor",
) -> list[Any]:
    """Open one SSE session as `user` and make the calls in it; returns each tool's text (or error)."""
    url = f"{server.url}/mcp/{client_name}/sse/{user}"
    results: list[Any] = []
    with anyio.fail_after(60):
        async with (
            sse_client(url, headers=headers or {"Authorization": f"Bearer {API_KEY}"}) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            for tool, arguments in calls:
                result = await session.call_tool(tool, arguments)
                text = result.content[0].text  # type: ignore[union-attr]
                results.append(("error", text) if result.is_error else text)
    return results


async def test_sse_tools_round_trip(server: LiveServer, user: str) -> None:
    url = f"{server.url}/mcp/cursor/sse/{user}"
    async with (
        sse_client(url, headers={"X-API-Key": API_KEY}) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == OPENMEMORY_TOOLS
    add_arguments = tools["add_memories"].input_schema["properties"]
    assert set(add_arguments) == {"text", "infer"} and add_arguments["infer"]["default"] is True

    added, found, listed = await sse_call(
        server,
        user,
        [
            ("add_memories", {"text": "Carol prefers tabs over spaces"}),
            ("search_memory", {"query": "indentation preference"}),
            ("list_memories", {}),
        ],
    )
    result = json.loads(added)["results"][0]
    assert (result["memory"], result["event"]) == ("Carol prefers tabs over spaces", "ADD")
    assert json.loads(found)["results"][0]["id"] == result["id"]
    assert [m["id"] for m in json.loads(listed)] == [result["id"]]
    with server.client() as rest:
        got = rest.get(f"/api/v1/memories/{result['id']}", params={"user_id": user}).json()
        log = rest.get(f"/api/v1/memories/{result['id']}/access-log").json()
    assert got["app_name"] == "cursor", "the SSE client's name is the memory's app"
    assert [(e["app_name"], e["access_type"]) for e in log["logs"]] == [
        ("cursor", "list"),
        ("cursor", "search"),
    ]

    deleted, remaining = await sse_call(
        server, user, [("delete_all_memories", {}), ("list_memories", {})], client_name="claude"
    )
    assert deleted == "Successfully deleted all memories" and json.loads(remaining) == []


async def test_sse_keys_and_users(server: LiveServer, user: str) -> None:
    alice, bob = f"{user}-alice", f"{user}-bob"
    [added] = await sse_call(server, alice, [("add_memories", {"text": "alice's locker code is 4471"})])
    memory_id = json.loads(added)["results"][0]["id"]
    found, listed, refused = await sse_call(
        server,
        bob,
        [
            ("search_memory", {"query": "locker code"}),
            ("list_memories", {}),
            ("delete_memories", {"memory_ids": [memory_id]}),
        ],
    )
    assert memory_id not in found and memory_id not in listed
    assert refused[0] == "error" and "not found" in refused[1]
    read_only = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
    [write] = await sse_call(server, alice, [("add_memories", {"text": "x"})], headers=read_only)
    assert write[0] == "error" and "read-only" in write[1]


def test_sse_requires_a_key_and_valid_ids(server: LiveServer, user: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert httpx.get(f"{server.url}/mcp/cursor/sse/{user}", headers=headers).status_code == 401
    good = {"Authorization": f"Bearer {API_KEY}"}
    bad = httpx.get(f"{server.url}/mcp/cursor/sse/%2A", headers=good)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "user_id"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    unknown = httpx.post(
        f"{server.url}/mcp/messages/", params={"session_id": "0" * 32}, json=body, headers=good
    )
    assert unknown.status_code == 404
    assert httpx.post(f"{server.url}/mcp/messages/", json=body).status_code == 401


def test_an_sse_session_takes_messages_only_with_its_own_key(server: LiveServer, user: str) -> None:
    """Another key (or none) cannot feed a session it did not open, even knowing its id."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("GET", f"{server.url}/mcp/cursor/sse/{user}", headers=headers) as stream,
    ):
        # The generator stays open: leaving it would close the stream, and the session with it.
        lines = stream.iter_lines()
        endpoint = next(line for line in lines if line.startswith("data:")).removeprefix("data:").strip()
        assert re.fullmatch(r"/mcp/messages/\?session_id=[0-9a-f]{32}", endpoint), endpoint
        post = f"{server.url}{endpoint}"
        other = {"Authorization": f"Bearer {READ_ONLY_KEY}"}
        assert http.post(post, json=body, headers=other).status_code == 404
        assert http.post(post, json=body).status_code == 401
        session_id = endpoint.rsplit("=", 1)[1]
        elsewhere = f"{server.url}/mcp/cursor/sse/{user}-other/messages/"
        assert (
            http.post(elsewhere, params={"session_id": session_id}, json=body, headers=headers).status_code
            == 404
        )
        assert http.post(post, json=body, headers=headers).status_code == 202


def test_no_path_is_redirected_to_another_user(server: LiveServer) -> None:
    """`alice/` is no scope id: its paths name no route, and nothing sends the client on to `alice`."""
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert httpx.post(f"{server.url}/mcp/claude/http/alice%2F", json=body, headers=headers).status_code == 404
    assert httpx.get(f"{server.url}/mcp/claude/sse/alice%2F", headers=headers).status_code == 404
    assert (
        httpx.get(f"{server.url}/api/v1/stats/", params={"user_id": "alice"}, headers=headers).status_code
        == 404
    )


def test_open_sse_sessions_are_capped(tmp_path: Path, embedding_model: Any) -> None:
    """Sessions hold a stream each: past the cap a new one gets 503 until one closes."""
    metrics = ServerMetrics()
    service = build_service(
        local_settings(tmp_path), ServerConfig(), metrics, embedding_model=embedding_model
    )
    slot = ServiceSlot(build=lambda: service, service=service)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with ServerThread(slot, metrics, max_sse_sessions=1) as live, httpx.Client(timeout=30) as http:
        url = f"{live.url}/mcp/cursor/sse/u"

        def status() -> int:
            with http.stream("GET", url, headers=headers) as response:
                return response.status_code

        with http.stream("GET", url, headers=headers) as first:
            assert first.status_code == 200
            assert status() == 503
        wait_until(lambda: status() == 200, 30, "the session's slot to be free again")
