"""Bad input gets a clear 4xx, never a 500: on REST and MCP alike, on a live server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_operator.server import limits
from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics

from .conftest import API_KEY, LiveServer, ServerThread, local_settings

pytestmark = pytest.mark.slow
MEMORIES = "/api/v1/memories/"
TOO_DEEP = limits.METADATA_MAX_DEPTH + 1
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {API_KEY}"}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def deep_filters(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        value = {"OR": [value]}
    return value


class Raw(str):
    """JSON text to put in a body as it is (nesting too deep for Python's encoder)."""


def raw_json(body: dict[str, Any]) -> bytes:
    """JSON as a client may send it: lone surrogates escaped (`\\ud800`), as Python's json does."""
    parts = {key: value for key, value in body.items() if isinstance(value, Raw)}
    text = json.dumps({k: (None if k in parts else v) for k, v in body.items()})
    for key, value in parts.items():
        text = text.replace(f'"{key}": null', f'"{key}": {value}')
    return text.encode()


def deep_raw_filters(depth: int) -> Raw:
    return Raw('{"OR": [' * depth + '{"a": 1}' + "]}" * depth)


def mcp_tool(server: LiveServer, user: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    headers = {**MCP_HEADERS, "Content-Type": "application/json"}
    url = f"{server.url}/mcp/claude/http/{user}"
    return httpx.post(url, content=raw_json(request), headers=headers, timeout=30)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/search", {"query": "x", "user_id": "u", "filters": {"OR": [1, 2]}}, "filters"),
        ("/search", {"query": "x", "user_id": "u", "filters": {"AND": ["x"]}}, "filters"),
        ("/search", {"query": "x", "user_id": "u", "filters": {"NOT": "x"}}, "filters"),
        ("/search", {"query": "x", "user_id": "u", "filters": deep_filters(50)}, "filters"),
        ("/search", {"query": "x", "user_id": "u", "filters": deep_raw_filters(450)}, "filters"),
        ("/search", {"query": "x", "user_id": "u", "filters": {"a": {"in": [[1]]}}}, "filters"),
        ("/search", {"query": "\ud800", "user_id": "u"}, "query"),
        ("/search", {"query": "x", "user_id": "u", "filters": {"t": "\udfff"}}, "filters"),
        (MEMORIES, {"user_id": "u", "text": "lone \ud800 surrogate"}, "text"),
        (MEMORIES, {"user_id": "u", "text": "\ud800" * 5_000}, "text"),
        (MEMORIES, {"user_id": "u", "text": "x", "metadata": nested(400)}, "metadata"),
        (
            MEMORIES,
            {"user_id": "u", "text": "x", "metadata": nested(limits.METADATA_MAX_DEPTH + 1)},
            "metadata",
        ),
        (MEMORIES, {"user_id": "u", "text": "x", "metadata": {"k": "\ud800"}}, "metadata"),
        (MEMORIES, {"user_id": "u", "text": "x", "app": "\ud800"}, "app"),
        # A known field that is not valid Unicode is refused (an unknown one is ignored, as upstream).
        (MEMORIES, {"user_id": "u", "text": "x", "metadata": {"\ud800" * 1000: 1}}, "metadata"),
        (MEMORIES, {"user_id": "*", "text": "x"}, "user_id"),
        (MEMORIES, {"user_id": " u", "text": "x"}, "user_id"),
        (MEMORIES, {"user_id": "\x1cu", "text": "x"}, "user_id"),
        (
            "/memories",
            {"messages": [{"role": "user", "content": "m"}] * (limits.MAX_MESSAGES + 1), "user_id": "u"},
            "messages",
        ),
        ("/memories", {"messages": "x", "user_id": "u", "agent_id": "*"}, "agent_id"),
        (f"{MEMORIES}filter", {"user_id": "u", "app_ids": ["a"] * (limits.MAX_NAMES + 1)}, "app_ids"),
    ],
)
def test_bad_body_is_422_naming_the_field_without_echo(
    server: LiveServer, path: str, body: dict[str, Any], field: str
) -> None:
    with server.client() as client:
        response = client.post(path, content=raw_json(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(field in error["loc"] for error in detail), detail
    assert len(response.content) < 4_096, "the rejected value is not echoed back"
    assert all(set(error) == {"loc", "msg", "type"} for error in detail)


def test_json_deeper_than_the_parser_is_400(server: LiveServer) -> None:
    body = b'{"user_id": "u", "text": "x", "metadata": {"k": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}"
    with server.client() as client:
        response = client.post(MEMORIES, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "query", [{"user_id": "*"}, {"user_id": " u"}, {"user_id": "u\n"}, {"agent_id": "*"}]
)
def test_bad_query_ids_are_422(server: LiveServer, query: dict[str, str]) -> None:
    route = MEMORIES if "user_id" in query else "/memories"
    with server.client() as client:
        response = client.get(route, params=query)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["query", next(iter(query))]]


def chunks(size: int) -> Iterator[bytes]:
    """A JSON body streamed in chunks with no Content-Length (chunked transfer encoding)."""
    yield b'{"user_id": "u", "text": "'
    sent = 0
    while sent < size:
        yield b"x" * 8192
        sent += 8192
    yield b'"}'


@pytest.mark.parametrize("path", [MEMORIES, "/mcp/claude/http/u"])
def test_oversized_chunked_body_is_413(server: LiveServer, path: str) -> None:
    with server.client() as client:
        response = client.post(
            path, content=chunks(200_000), headers={**MCP_HEADERS, "Content-Type": "application/json"}
        )
        assert response.status_code == 413, response.text
        assert response.json() == {"detail": "Content Too Large"}
        declared = client.post(path, content=b"x" * 70_000, headers={**MCP_HEADERS})
        assert declared.status_code == 413


def test_undeclared_methods_are_405(server: LiveServer) -> None:
    with server.client() as client:
        for method, path in [
            ("GET", f"{MEMORIES}filter"),
            ("PUT", f"{MEMORIES}filter"),
            ("PATCH", "/search"),
            ("POST", "/api/v1/stats"),
            ("PUT", "/mcp/claude/http/u"),
        ]:
            response = client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"]


@pytest.mark.parametrize(
    "path",
    [MEMORIES, "/mcp/claude/http/u"],
)
def test_two_authorization_headers_are_refused_alike(server: LiveServer, path: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for values in [(API_KEY, API_KEY), (API_KEY, "wrong"), ("wrong", API_KEY)]:
        headers = [("Accept", MCP_HEADERS["Accept"])] + [("Authorization", f"Bearer {v}") for v in values]
        if path == MEMORIES:
            response = httpx.get(f"{server.url}{path}", params={"user_id": "u"}, headers=headers)
        else:
            response = httpx.post(f"{server.url}{path}", json=body, headers=headers)
        assert response.status_code == 401, (values, response.text)
        assert response.json() == {"detail": "Not authenticated"}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/mcp/claude/http/%2A", "user_id"),
        ("/mcp/claude/http/%20alice", "user_id"),
        ("/mcp/claude/http/%1Calice", "user_id"),
        ("/mcp/claude/http/alice%0A", "user_id"),
        ("/mcp/%2A/http/alice", "client_name"),
    ],
)
def test_mcp_path_ids_follow_the_grammar(server: LiveServer, path: str, field: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    response = httpx.post(f"{server.url}{path}", json=body, headers=MCP_HEADERS)
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["path", field]]


def tool_error(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    message = response.json()
    if "error" in message:
        return str(message["error"]["message"])
    result = message["result"]
    assert result["isError"], result
    return str(result["content"][0]["text"])


def test_mcp_tool_arguments_have_the_rest_limits(
    server: LiveServer, user: str, tmp_path: Path, embedding_model: Any
) -> None:
    too_long = "x" * (limits.TEXT_MAX_CHARS + 1)
    # A server that takes 1 MiB bodies, so that the text limit is what refuses.
    metrics = ServerMetrics()
    service = build_service(
        local_settings(tmp_path), ServerConfig(), metrics, embedding_model=embedding_model
    )
    slot = ServiceSlot(build=lambda: service, service=service)
    with ServerThread(slot, metrics, max_body_bytes=1 << 20) as roomy:
        assert "65536" in tool_error(mcp_tool(roomy, user, "add_memories", {"text": too_long}))
        assert tool_error(mcp_tool(roomy, user, "search_memory", {"query": too_long}))
        with roomy.client() as client:
            rest = client.post(MEMORIES, json={"user_id": user, "text": too_long})
            assert rest.status_code == 422 and rest.json()["detail"][0]["loc"] == ["body", "text"]
    # The MCP SDK's JSON parser refuses lone surrogates before any tool runs.
    assert mcp_tool(server, user, "add_memories", {"text": "a \ud800"}).status_code == 400
    assert tool_error(mcp_tool(server, user, "delete_memories", {"memory_ids": ["not-a-uuid"]}))
    with server.client() as client:
        assert client.get(MEMORIES, params={"user_id": user}).json()["total"] == 0


def test_mcp_event_stream_is_closed_when_idle(server: LiveServer) -> None:
    """The fixture's server closes idle streams after 1s: the GET ends by itself, well before 10s."""
    started = time.monotonic()
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {API_KEY}"}
    with httpx.stream("GET", f"{server.url}/mcp/claude/http/u", headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for _ in response.iter_bytes():
            pass
    assert time.monotonic() - started < 8
