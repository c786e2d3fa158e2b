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
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from memory_operator.server.app import ServiceSlot
from memory_operator.server.auth import Access, ApiKeys, ScopedKey
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.scope_id import SCOPE_ID_PATTERN, is_scope_id
from memory_operator.server.store import Reach, Scope

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer, ServerThread, local_settings

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

    def sse(self, user: str, tool: str, arguments: dict[str, Any]) -> tuple[int, Any]:
        """One tool call in a fresh SSE session as `user`: the GET's status, and the call's answer."""
        with self.http.stream("GET", f"/mcp/claude/sse/{quote(user, safe='')}") as stream:
            if stream.status_code != 200:
                return stream.status_code, None
            lines = stream.iter_lines()
            endpoint = next(line for line in lines if line.startswith("data:")).removeprefix("data:").strip()

            def rpc(message: dict[str, Any]) -> None:
                assert self.http.post(endpoint, json={"jsonrpc": "2.0", **message}).status_code == 202

            def answer() -> Any:
                return json.loads(
                    next(line for line in lines if line.startswith("data:")).removeprefix("data:")
                )

            version = "2025-03-26"
            info = {"name": "isolation", "version": "1"}
            rpc(
                {
                    "id": 1,
                    "method": "initialize",
                    "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": info},
                }
            )
            answer()
            rpc({"method": "notifications/initialized"})
            rpc({"id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
            return 200, answer()


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
    elif "/" in b or b in ("", ".", ".."):
        assert response.status_code in (404, 422), (what, response.status_code)  # no such path
    else:
        assert response.status_code == 422, (what, response.status_code, response.text)


def expect_sse_refused_or_empty(status: int, answer: Any, b: str, memory_id: str, what: str) -> None:
    if is_scope_id(b):
        assert status == 200 and answer is not None, (what, status)
        assert memory_id not in ids_in(answer), f"{what} returned A's memory"
    else:
        # An id that cannot be a path segment (`/`, empty, dot segments) names no route at all.
        assert status in ((404, 422) if "/" in b or b in ("", ".", "..") else (422,)), (what, status)


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
    app = f"app-{a}"
    added = http.post(
        "/memories", json={"messages": TEXT, "user_id": a, "agent_id": a, "run_id": a, "app": app}
    )
    assert added.status_code == 200, added.text
    memory_id = added.json()["results"][0]["id"]
    # A's memory has been searched by its app, so that it has an access log to keep to itself.
    assert memory_id in ids_in(client.mcp(a, "search_memory", {"query": TEXT}).json())
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
    as_b = {"user_id": b}
    expect_not_changed(
        http.post(f"{MEMORIES}actions/archive", params=as_b, json=[memory_id]), valid, "archive list"
    )
    expect_not_changed(http.get(f"{MEMORIES}{memory_id}/access-log", params=as_b), valid, "access log")
    expect_not_changed(http.get(f"{MEMORIES}{memory_id}/related", params=as_b), valid, "related")
    expect_refused_or_empty(http.get("/api/v1/stats", params=as_b), valid, memory_id, "stats")
    apps = http.get("/api/v1/apps/", params=as_b)
    expect_refused_or_empty(apps, valid, memory_id, "apps")
    # B may have a state of A's app (B pauses it below), never A's counts.
    listed = [x for x in apps.json()["apps"] if x["name"] == app] if valid else []
    assert all(x["total_memories_created"] == x["total_memories_accessed"] == 0 for x in listed), listed
    details = http.get(f"/api/v1/apps/{app}", params=as_b)
    expect_refused_or_empty(details, valid, memory_id, "app details")
    assert details.status_code != 200 or details.json()["total_memories_created"] == 0
    expect_refused_or_empty(
        http.get(f"/api/v1/apps/{app}/memories", params=as_b), valid, memory_id, "app memories"
    )
    expect_refused_or_empty(
        http.get(f"/api/v1/apps/{app}/accessed", params=as_b), valid, memory_id, "accessed"
    )
    paused_app = http.put(f"/api/v1/apps/{app}", params={**as_b, "is_active": False})
    assert paused_app.status_code == (200 if valid else 422), paused_app.text
    exported = http.post("/api/v1/backup/export", json=as_b, headers={"Accept": "application/x-ndjson"})
    assert exported.status_code == (200 if valid else 422), exported.text
    assert not valid or memory_id not in exported.text, "B's export holds none of A's memories"
    forged = json.dumps({"id": memory_id, "content": "overwritten", "user_id": a}).encode()
    imported = http.post(
        "/api/v1/backup/import", params=as_b, content=forged, headers={"Content-Type": "application/x-ndjson"}
    )
    assert imported.status_code == (200 if valid else 422), imported.text
    assert not valid or imported.json()["renamed"] == 1, "an import as B never takes A's id"

    # mem0 REST, as B in each scope field.
    for field in SCOPE_FIELDS:
        scope = {field: b}
        expect_refused_or_empty(
            http.post("/search", json={"query": TEXT, **scope}), valid, memory_id, f"search {field}"
        )
        expect_refused_or_empty(http.get("/memories", params=scope), valid, memory_id, f"list {field}")
        expect_not_changed(http.get(f"/memories/{memory_id}", params=scope), valid, f"get {field}")
        expect_not_changed(http.delete(f"/memories/{memory_id}", params=scope), valid, f"delete {field}")
        bulk = http.delete("/memories", params=scope)
        assert bulk.status_code == (200 if valid else 422), (field, bulk.text)

        # mem0's MemoryClient paths: the scope in `filters` (v2, v3) or at the top level (v1).
        in_filters = {"filters": scope}
        for version in ("v1", "v2", "v3"):
            expect_refused_or_empty(
                http.post(f"/{version}/memories/search/", json={"query": TEXT, **in_filters}),
                valid,
                memory_id,
                f"{version} search {field}",
            )
        for version in ("v2", "v3"):
            expect_refused_or_empty(
                http.post(f"/{version}/memories/", json=in_filters),
                valid,
                memory_id,
                f"{version} list {field}",
            )
        expect_refused_or_empty(
            http.post("/v3/memories/search/", json={"query": TEXT, "filters": {"AND": [scope]}}),
            valid,
            memory_id,
            f"v3 search AND {field}",
        )
        expect_refused_or_empty(
            http.post("/search", json={"query": TEXT, **in_filters}),
            valid,
            memory_id,
            f"search filters {field}",
        )
        expect_refused_or_empty(http.get("/v1/memories/", params=scope), valid, memory_id, f"v1 list {field}")
        v1_bulk = http.delete("/v1/memories/", params=scope)
        assert v1_bulk.status_code == (200 if valid else 422), (field, v1_bulk.text)

    # MCP, as user B in the path.
    expect_mcp_refused_or_empty(client.mcp(b, "search_memory", {"query": TEXT}), b, memory_id, "mcp search")
    expect_mcp_refused_or_empty(client.mcp(b, "list_memories", {}), b, memory_id, "mcp list")
    deleted = client.mcp(b, "delete_memories", {"memory_ids": [memory_id]})
    expect_mcp_refused_or_empty(deleted, b, memory_id, "mcp delete")
    if deleted.status_code == 200:
        assert deleted.json()["result"]["isError"], "deleting A's memory as B must fail"
    expect_mcp_refused_or_empty(client.mcp(b, "delete_all_memories", {}), b, memory_id, "mcp delete all")
    for tool, arguments in (
        ("search_memory", {"query": TEXT}),
        ("list_memories", {}),
        ("delete_memories", {"memory_ids": [memory_id]}),
        ("delete_all_memories", {}),
    ):
        status, answer = client.sse(b, tool, arguments)
        expect_sse_refused_or_empty(status, answer, b, memory_id, f"sse {tool}")

    # A's memory is still there, unchanged and active.
    kept = http.get(f"{MEMORIES}{memory_id}", params={"user_id": a})
    assert kept.status_code == 200, kept.text
    assert (kept.json()["content"], kept.json()["state"]) == (TEXT, "active")
    log = http.get(f"{MEMORIES}{memory_id}/access-log", params={"user_id": a}).json()["logs"]
    assert [e["app_name"] for e in log] == ["claude", "claude"], "B's reads are not in A's access log"
    assert http.get(f"/api/v1/apps/{app}", params={"user_id": a}).json()["is_active"], (
        "B cannot pause A's app"
    )
    assert http.post("/memories", json={"messages": "more", "user_id": a, "app": app}).status_code == 200
    # Each example starts afresh: shrinking repeats ids, and A's search must find this example's memory.
    assert http.delete("/memories", params={"user_id": a}).status_code == 200
    http.close()


ALICE_KEY = "test-alice-only-key"


@pytest.fixture(scope="module")
def reach_server(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[LiveServer]:
    """A server with one more key, limited to user `alice` (the seam per-client keys plug into)."""
    alice_only = ScopedKey("alice-only", ALICE_KEY, Access.write, Reach((Scope(user_id="alice"),)))
    metrics = ServerMetrics()
    settings_ = local_settings(Path(tmp_path_factory.mktemp("reach")))
    service = build_service(settings_, ServerConfig(), metrics, embedding_model=embedding_model)
    slot = ServiceSlot(build=lambda: service, service=service)
    keys = ApiKeys(API_KEY, READ_ONLY_KEY, scoped_keys=(alice_only,))
    with ServerThread(slot, metrics, keys=keys) as live:
        yield live


def test_a_key_never_reaches_beyond_its_scopes(reach_server: LiveServer) -> None:
    """Routes by id without a scope act within the key's reach; a scope outside it is 403."""
    with reach_server.client() as admin:
        ids = {}
        for user in ("alice", "bob"):
            added = admin.post(
                MEMORIES, json={"user_id": user, "text": f"{user}'s fact", "app": f"{user}-app"}
            )
            ids[user] = added.json()["id"]
    mine, theirs = ids["alice"], ids["bob"]
    with reach_server.client(key=ALICE_KEY) as http:
        for memory_id, expected in ((theirs, 404), (mine, 200)):
            for method, path, body in [
                ("GET", f"/memories/{memory_id}", None),
                ("GET", f"/v1/memories/{memory_id}/", None),
                ("GET", f"/memories/{memory_id}/history", None),
                ("GET", f"/v1/memories/{memory_id}/history/", None),
                ("GET", f"{MEMORIES}{memory_id}", None),
                ("GET", f"{MEMORIES}{memory_id}/access-log", None),
                ("GET", f"{MEMORIES}{memory_id}/related", None),
                ("PUT", f"/memories/{memory_id}", {"metadata": {"touched": True}}),
                ("PUT", f"/v1/memories/{memory_id}/", {"metadata": {"touched": True}}),
                ("PUT", f"{MEMORIES}{memory_id}", {"metadata": {"touched": True}}),
                ("POST", f"{MEMORIES}actions/archive", [memory_id]),
            ]:
                response = http.request(method, path, json=body)
                assert response.status_code == expected, (method, path, response.status_code, response.text)
        assert http.delete(f"/memories/{theirs}").status_code == 404
        assert http.delete(f"/v1/memories/{theirs}/").status_code == 404
        listed = http.get("/memories").json()["results"]
        assert [m["id"] for m in listed] == [], "alice's memory is archived; bob's is out of reach"
        assert [a["name"] for a in http.get("/api/v1/apps/").json()["apps"]] == ["alice-app"]
        assert http.put("/api/v1/apps/bob-app", params={"is_active": False}).status_code == 404
        exported = http.post("/api/v1/backup/export", json={}, headers={"Accept": "application/x-ndjson"})
        assert [json.loads(line)["id"] for line in exported.content.splitlines()] == [mine]
        for method, path, params, body in [
            ("GET", MEMORIES, {"user_id": "bob"}, None),
            ("POST", "/search", None, {"query": "fact", "user_id": "bob"}),
            ("POST", "/v3/memories/search/", None, {"query": "fact", "filters": {"user_id": "bob"}}),
            ("DELETE", "/memories", {"user_id": "bob"}, None),
            ("GET", f"{MEMORIES}{theirs}", {"user_id": "bob"}, None),
            ("PUT", "/api/v1/apps/bob-app", {"user_id": "bob", "is_active": False}, None),
            ("POST", "/memories", None, {"messages": "x", "agent_id": "a"}),
        ]:
            response = http.request(method, path, params=params, json=body)
            assert response.status_code == 403, (method, path, response.text)
        forged = json.dumps({"id": theirs, "content": "overwritten", "user_id": "bob"}).encode()
        imported = http.post(
            "/api/v1/backup/import", content=forged, headers={"Content-Type": "application/x-ndjson"}
        )
        assert imported.status_code == 403
        mcp = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        assert http.post("/mcp/claude/http/bob", json=mcp, headers=accept).status_code == 403
        assert http.get("/mcp/claude/sse/bob").status_code == 403
    with reach_server.client() as admin:
        kept = admin.get(f"/memories/{theirs}").json()
        assert (kept["memory"], kept["metadata"], kept["state"]) == ("bob's fact", None, "active")
