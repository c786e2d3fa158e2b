"""Per-client keys (MemoryClients): scopes as allow-lists of ids and prefixes, quotas, the clients file.

The rules are checked by property against a reference reading of the scopes; the live server is then
asked, for generated scopes and generated request ids, on every kind of route (OpenMemory REST, mem0
REST and client paths, MCP over streamable HTTP and SSE): a request outside the client's scopes gets
403 and never data, a request within gets only memories within them, and requests without a scope
see exactly the memories within reach.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_operator.api.client import ClientGrant, ClientScopes, entry_problem
from memory_operator.server.app import ServiceSlot
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service
from memory_operator.server.clients import (
    ClientDirectory,
    ClientsFileWatcher,
    TokenBucket,
    key_sha256,
    load_clients,
    parse_clients,
)
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.scope_rules import IdRule, ScopeRules
from memory_operator.server.settings import DEFAULT_CLIENTS_RELOAD_SECONDS
from memory_operator.server.store import Scope

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer, ServerThread, local_settings

FIELDS = ("user_id", "agent_id", "run_id")
LISTS = {"user_id": "userIds", "agent_id": "agentIds", "run_id": "runIds"}
USERS = ("alice", "alex", "bob", "team-a-1", "team-b-2")
AGENTS = ("bot", "bot-2", "x")
RUNS = ("r1", "r2")
IDS = {"user_id": USERS, "agent_id": AGENTS, "run_id": RUNS}
PREFIXES = {"user_id": ("al*", "team-a-*", "b*"), "agent_id": ("bot*",), "run_id": ("r*",)}


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def grant(name: str, key: str, access: str = "readWrite", **spec: Any) -> ClientGrant:
    return ClientGrant.model_validate({"name": name, "keySha256": key_sha256(key), "access": access, **spec})


EVERY_ID = {"userIds": ["*"], "agentIds": ["*"], "runIds": ["*"]}


# --- the rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "valid"),
    [
        ("*", True),
        ("alice", True),
        ("team-a-*", True),
        ("a*", True),
        ("**", False),
        ("a*b", False),
        ("*a", False),
        (" alice", False),
        ("al ice*", False),
        ("-a", False),
        ("é", False),
    ],
)
def test_scope_entries(entry: str, valid: bool) -> None:
    assert (entry_problem(entry) is None) == valid


def test_scope_problems_name_the_entry_never_accept_star_among_others() -> None:
    scopes = ClientScopes.model_validate({"userIds": ["alice", "a b"], "agentIds": ["*", "bot"]})
    problems = scopes.problems()
    assert problems[0].startswith("userIds[1]: 'a b' is not an id")
    assert problems[1] == "agentIds: `*` allows every value, so it must be the list's only entry"
    assert scopes.empty_fields() == ["runIds"]


def reference_allows(entries: list[str], value: str | None) -> bool:
    """The scopes as docs/clients.md reads them, written the plain way."""
    if "*" in entries:
        return True
    if value is None:
        return False
    return any(value == e or (e.endswith("*") and value.startswith(e[:-1])) for e in entries)


@st.composite
def field_entries(draw: st.DrawFn, field: str) -> list[str]:
    if draw(st.booleans()) and draw(st.booleans()):
        return ["*"]
    return draw(st.lists(st.sampled_from(IDS[field] + PREFIXES[field]), max_size=3, unique=True))


@st.composite
def client_scopes(draw: st.DrawFn) -> dict[str, list[str]]:
    return {LISTS[f]: draw(field_entries(f)) for f in FIELDS}


optional_ids = {f: st.one_of(st.none(), st.sampled_from(IDS[f])) for f in FIELDS}


@st.composite
def request_scopes(draw: st.DrawFn) -> dict[str, str]:
    scope = {f: v for f in FIELDS if (v := draw(optional_ids[f])) is not None}
    return scope or {"user_id": draw(st.sampled_from(USERS))}


@settings(max_examples=300, deadline=None)
@given(scopes=client_scopes(), payload=st.fixed_dictionaries(optional_ids), scope=request_scopes())
def test_rules_are_the_allow_lists_and_a_permitted_scope_stays_within(
    scopes: dict[str, list[str]], payload: dict[str, str | None], scope: dict[str, str]
) -> None:
    rules = ScopeRules.of(ClientScopes.model_validate(scopes))
    stored = {k: v for k, v in payload.items() if v is not None}
    assert rules.contains(stored) == all(reference_allows(scopes[LISTS[f]], payload[f]) for f in FIELDS)
    permitted = rules.permits(Scope(**scope))
    expected = all(
        scopes[LISTS[f]] == ["*"] or (f in scope and reference_allows(scopes[LISTS[f]], scope[f]))
        for f in FIELDS
    )
    assert permitted == expected
    # Soundness: every memory the scope selects is within reach when the scope is permitted.
    if permitted and all(stored.get(k) == v for k, v in scope.items()):
        assert rules.contains(stored)


def test_an_empty_list_allows_nothing_and_star_allows_absence() -> None:
    rules = ScopeRules(IdRule.of(["alice"]), IdRule.of(["*"]), IdRule.of([]))
    assert not rules.contains({"user_id": "alice"})
    assert not rules.permits(Scope(user_id="alice", run_id="r1"))
    open_runs = ScopeRules(IdRule.of(["alice"]), IdRule.of(["*"]), IdRule.of(["*"]))
    assert open_runs.contains({"user_id": "alice"}) and open_runs.permits(Scope(user_id="alice"))
    assert not open_runs.permits(Scope(agent_id="bot")), "a scope naming no user reaches every user"


# --- quotas and the clients file -------------------------------------------------------------------


def test_token_bucket_admits_the_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, capacity=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    clock.now += 100
    assert [bucket.take() for _ in range(4)][-1] > 0, "never more than the burst at once"


def test_reloads_keep_a_clients_bucket_unless_its_quota_changes() -> None:
    clock = Clock()
    quota = {"quota": {"requestsPerSecond": 1, "burst": 1}, "scopes": EVERY_ID}
    directory = ClientDirectory([grant("app", "k" * 32, **quota)], clock)
    client = directory.find("k" * 32)
    assert client is not None
    client.admit(write=False)
    directory.replace([grant("app", "k" * 32, **quota), grant("other", "o" * 32)])
    again = directory.find("k" * 32)
    assert again is not None and again.limits is client.limits, "a reload refills nobody's bucket"
    directory.replace([grant("app", "k" * 32, quota={"requestsPerSecond": 5}, scopes=EVERY_ID)])
    changed = directory.find("k" * 32)
    assert changed is not None and changed.limits is not client.limits
    assert directory.find("o" * 32) is None


def test_the_clients_file_holds_hashes_or_for_trying_keys(tmp_path: Path) -> None:
    path = tmp_path / "clients.yaml"
    path.write_text(
        "clients:\n"
        "  - {name: notes-app, key: my-very-own-key-123, access: readWrite,\n"
        "     scopes: {userIds: ['team-a-*'], agentIds: ['*'], runIds: ['*']},\n"
        "     quota: {requestsPerSecond: 5, writesPerSecond: 1}}\n"
    )
    directory = ClientDirectory(load_clients(path))
    client = directory.find("my-very-own-key-123")
    assert client is not None and client.name == "notes-app"
    assert client.reach.permits(Scope(user_id="team-a-7")) and not client.reach.permits(Scope(user_id="b"))
    assert load_clients(tmp_path / "missing.json") == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"clients": [{"name": "a"}]}, "give exactly one of keySha256 and key"),
        ({"clients": [{"name": "a", "key": "k" * 20, "keySha256": "0" * 64}]}, "exactly one"),
        ({"clients": [{"name": "a", "keySha256": "xyz"}]}, "keySha256"),
        ({"clients": [{"name": "a", "key": "k" * 20, "scopes": {"userIds": ["a b"]}}]}, "userIds[0]"),
        ({"clients": [{"name": "a", "key": "k" * 20}, {"name": "a", "key": "j" * 20}]}, "unique: a"),
        ({"clients": [{"name": "a", "key": "k" * 20}, {"name": "b", "key": "k" * 20}]}, "same key"),
        ({"clients": [{"name": "a", "key": "k" * 20, "quota": {"burst": 3}}]}, "burst needs"),
        ({"clients": [{"name": "a", "key": "k" * 20, "extra": 1}]}, "extra"),
    ],
)
def test_a_bad_clients_file_says_what_is_wrong_and_never_shows_a_key(
    document: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        parse_clients(json.dumps(document))
    assert message in str(raised.value)
    assert "k" * 20 not in str(raised.value)


def test_the_watcher_reloads_a_changed_file_and_keeps_clients_on_a_bad_one(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    errors: list[int] = []
    directory = ClientDirectory()
    watcher = ClientsFileWatcher(path, directory, on_error=lambda: errors.append(1))
    assert watcher.poll() and len(directory) == 0, "no file: no clients"
    write_clients(path, [grant("a", "a" * 32)])
    assert watcher.poll() and directory.names() == ["a"]
    assert not watcher.poll(), "an unchanged file is not read again"
    path.write_text("{not json nor: [yaml")
    assert not watcher.poll() and directory.names() == ["a"] and errors == [1]
    # The kubelet's way: a new file swapped in under the same name.
    fresh = tmp_path / "clients.new"
    write_clients(fresh, [grant("b", "b" * 32)])
    fresh.replace(path)
    assert watcher.poll() and directory.names() == ["b"]
    path.unlink()
    assert watcher.poll() and directory.names() == []


def write_clients(path: Path, grants: list[ClientGrant]) -> None:
    path.write_text(json.dumps({"clients": [g.wire() for g in grants]}))


# --- the live server -------------------------------------------------------------------------------

pytest_slow = pytest.mark.slow
CLIENT_KEY = "client-key-of-the-scoped-app-0001"
OTHER_KEY = "client-key-of-another-app-0000002"
MEMORIES = "/api/v1/memories/"
ACCEPT = {"Accept": "application/json, text/event-stream"}


class Live:
    """A server whose clients the tests set, on a clock they move."""

    def __init__(self, live: LiveServer, directory: ClientDirectory, clock: Clock, routes: list[Any]) -> None:
        self.live, self.directory, self.clock = live, directory, clock
        self.app_routes = routes
        self.seeded: dict[str, dict[str, str]] = {}

    def set_clients(self, *grants: ClientGrant) -> None:
        self.directory.replace(grants)

    def client(self, key: str = CLIENT_KEY) -> httpx.Client:
        return self.live.client(key)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[Live]:
    clock = Clock()
    directory = ClientDirectory(clock=clock)
    metrics = ServerMetrics()
    settings_ = local_settings(Path(tmp_path_factory.mktemp("clients")))
    service = build_service(settings_, ServerConfig(), metrics, embedding_model=embedding_model)
    slot = ServiceSlot(build=lambda: service, service=service)
    keys = ApiKeys(API_KEY, READ_ONLY_KEY, clients=directory)
    thread = ServerThread(slot, metrics, keys=keys)
    with thread as server:
        state = Live(server, directory, clock, list(thread.server.config.app.routes))
        with server.client() as admin:
            for user in USERS:
                for agent in (None, "bot", "x"):
                    for run in (None, "r1"):
                        scope = {"user_id": user, **({"agent_id": agent} if agent else {})}
                        scope.update({"run_id": run} if run else {})
                        added = admin.post(MEMORIES, json={**scope, "text": f"fact of {scope}", "app": user})
                        assert added.status_code == 200, added.text
                        state.seeded[added.json()["id"]] = scope
        yield state


def essentials(memories: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What a write could change of each memory (reads add to its access log, which is not compared)."""
    keys = ("content", "state", "app", "user_id", "agent_id", "run_id")
    return {i: tuple(record.get(k) for k in keys) for i, record in memories.items()}


def ids_of(response: httpx.Response) -> set[str]:
    body = response.json()
    items = (body.get("results") or body.get("items") or []) if isinstance(body, dict) else body
    return {str(item["id"]) for item in items}


def stored(live: Live) -> dict[str, dict[str, Any]]:
    """Every memory of the store (its export, as the admin key sees it), by id."""
    with live.live.client() as admin:
        exported = admin.post("/api/v1/backup/export", json={}, headers={"Accept": "application/x-ndjson"})
    records = [json.loads(line) for line in exported.content.splitlines()]
    return {r["id"]: r for r in records}


def mcp_call(http: httpx.Client, user: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return http.post(f"/mcp/app/http/{quote(user, safe='')}", json=message, headers=ACCEPT)


@dataclass(frozen=True)
class Route:
    """One route of the server, asked as the client: `kind` says what it must answer.

    - `read`: a scope given: 403 unless permitted, else 200 and only memories within reach;
    - `write`: a scope given, asked only when refused: 403 (and nothing changes);
    - `read-id`: a memory by id with a scope: 403 unless permitted, else 200 if the memory is the
      scope's, 404 if not;
    - `reach-id`: a memory by id without a scope: 200 within reach, 404 outside;
    - `reach-id-write`: the same for a write, asked only for a memory outside reach: 404.

    `user` routes (OpenMemory's, MCP's) name a user only, the rest all three ids.
    """

    method: str
    path: str
    kind: str
    user: bool
    call: Callable[[httpx.Client, dict[str, str], str], httpx.Response]


def _q(method: str, path: str) -> Callable[[httpx.Client, dict[str, str], str], httpx.Response]:
    """The scope (and nothing else) as the query."""
    return lambda http, scope, memory_id: http.request(method, path.format(id=memory_id), params=scope)


def _b(method: str, path: str, **body: Any) -> Callable[[httpx.Client, dict[str, str], str], httpx.Response]:
    """The scope in the body, beside `body` (`{id}` in a value is the memory's id)."""

    def call(http: httpx.Client, scope: dict[str, str], memory_id: str) -> httpx.Response:
        filled = json.loads(json.dumps(body).replace("{id}", memory_id))
        return http.request(method, path.format(id=memory_id), json={**filled, **scope})

    return call


def _filters(path: str, **body: Any) -> Callable[[httpx.Client, dict[str, str], str], httpx.Response]:
    return lambda http, scope, memory_id: http.post(path, json={**body, "filters": scope})


def _mcp(tool: str, **arguments: Any) -> Callable[[httpx.Client, dict[str, str], str], httpx.Response]:
    return lambda http, scope, memory_id: mcp_call(http, scope["user_id"], tool, arguments)


def _sse(http: httpx.Client, scope: dict[str, str], memory_id: str) -> httpx.Response:
    return http.get(f"/mcp/app/sse/{scope['user_id']}")


M, OM = "/memories", "/api/v1/memories/"
FACT = {"messages": "new fact"}
ROUTES = [
    # OpenMemory's REST API (a user only)
    Route("GET", OM, "read", True, _q("GET", OM)),
    Route("POST", OM, "write", True, _b("POST", OM, text="new")),
    Route("POST", f"{OM}filter", "read", True, _b("POST", f"{OM}filter")),
    Route("GET", f"{OM}categories", "read", True, _q("GET", f"{OM}categories")),
    Route(
        "POST", f"{OM}actions/archive", "write", True, _b("POST", f"{OM}actions/archive", memory_ids=["{id}"])
    ),
    Route("POST", f"{OM}actions/pause", "write", True, _b("POST", f"{OM}actions/pause", global_pause=True)),
    Route("DELETE", OM, "write", True, _b("DELETE", OM, memory_ids=["{id}"])),
    # Erasure of one subject: a user's here (exactly one id).
    Route("POST", f"{OM}actions/erase", "write", True, _b("POST", f"{OM}actions/erase")),
    Route("GET", f"{OM}{{memory_id}}", "read-id", True, _q("GET", OM + "{id}")),
    Route("GET", f"{OM}{{memory_id}}", "reach-id", True, _q("GET", OM + "{id}")),
    Route("PUT", f"{OM}{{memory_id}}", "write", True, _b("PUT", OM + "{id}", memory_content="x")),
    Route("PUT", f"{OM}{{memory_id}}", "reach-id-write", True, _b("PUT", OM + "{id}", memory_content="x")),
    Route("GET", f"{OM}{{memory_id}}/access-log", "read-id", True, _q("GET", OM + "{id}/access-log")),
    Route("GET", f"{OM}{{memory_id}}/related", "read-id", True, _q("GET", OM + "{id}/related")),
    Route("GET", f"{OM}{{memory_id}}/related", "reach-id", True, _q("GET", OM + "{id}/related")),
    Route("GET", "/api/v1/stats", "read", True, _q("GET", "/api/v1/stats")),
    Route("GET", "/api/v1/apps/", "read", True, _q("GET", "/api/v1/apps/")),
    Route("GET", "/api/v1/apps/{app_id}", "read", True, _q("GET", "/api/v1/apps/alice")),
    Route(
        "PUT",
        "/api/v1/apps/{app_id}",
        "write",
        True,
        lambda h, s, i: h.put("/api/v1/apps/alice", params={**s, "is_active": False}),
    ),
    Route("GET", "/api/v1/apps/{app_id}/memories", "read", True, _q("GET", "/api/v1/apps/alice/memories")),
    Route("GET", "/api/v1/apps/{app_id}/accessed", "read", True, _q("GET", "/api/v1/apps/alice/accessed")),
    Route(
        "POST",
        "/api/v1/backup/export",
        "read",
        True,
        lambda h, s, i: h.post("/api/v1/backup/export", json=s, headers={"Accept": "application/x-ndjson"}),
    ),
    Route(
        "POST",
        "/api/v1/backup/import",
        "write",
        True,
        lambda h, s, i: h.post(
            "/api/v1/backup/import",
            params=s,
            content=b'{"id": "00000000-0000-4000-8000-000000000001", "content": "x"}',
            headers={"Content-Type": "application/x-ndjson"},
        ),
    ),
    # mem0's REST API
    Route("POST", M, "write", False, _b("POST", M, **FACT)),
    Route("GET", M, "read", False, _q("GET", M)),
    Route("DELETE", M, "write", False, _q("DELETE", M)),
    Route("POST", "/search", "read", False, _b("POST", "/search", query="fact")),
    Route("GET", f"{M}/{{memory_id}}", "read-id", False, _q("GET", M + "/{id}")),
    Route("GET", f"{M}/{{memory_id}}", "reach-id", False, _q("GET", M + "/{id}")),
    Route(
        "PUT",
        f"{M}/{{memory_id}}",
        "reach-id-write",
        False,
        lambda h, s, i: h.put(f"{M}/{i}", json={"text": "x"}),
    ),
    Route("GET", f"{M}/{{memory_id}}/history", "reach-id", False, _q("GET", M + "/{id}/history")),
    Route("DELETE", f"{M}/{{memory_id}}", "write", False, _q("DELETE", M + "/{id}")),
    Route("DELETE", f"{M}/{{memory_id}}", "reach-id-write", False, _q("DELETE", M + "/{id}")),
    # the paths of mem0's MemoryClient
    Route("POST", "/v1/memories/", "write", False, _b("POST", "/v1/memories/", **FACT)),
    Route("POST", "/v3/memories/add/", "write", False, _b("POST", "/v3/memories/add/", **FACT)),
    Route("POST", "/v1/memories/search/", "read", False, _b("POST", "/v1/memories/search/", query="fact")),
    Route("POST", "/v2/memories/search/", "read", False, _filters("/v2/memories/search/", query="fact")),
    Route(
        "POST",
        "/v3/memories/search/",
        "read",
        False,
        lambda h, s, i: h.post(
            "/v3/memories/search/", json={"query": "fact", "filters": {"AND": [{k: v} for k, v in s.items()]}}
        ),
    ),
    Route("POST", "/v2/memories/", "read", False, _filters("/v2/memories/")),
    Route("POST", "/v3/memories/", "read", False, _filters("/v3/memories/")),
    Route("GET", "/v1/memories/", "read", False, _q("GET", "/v1/memories/")),
    Route("DELETE", "/v1/memories/", "write", False, _q("DELETE", "/v1/memories/")),
    Route("GET", "/v1/memories/{memory_id}/", "reach-id", False, _q("GET", "/v1/memories/{id}/")),
    Route(
        "PUT",
        "/v1/memories/{memory_id}/",
        "reach-id-write",
        False,
        lambda h, s, i: h.put(f"/v1/memories/{i}/", json={"text": "x"}),
    ),
    Route("DELETE", "/v1/memories/{memory_id}/", "reach-id-write", False, _q("DELETE", "/v1/memories/{id}/")),
    Route(
        "GET", "/v1/memories/{memory_id}/history/", "reach-id", False, _q("GET", "/v1/memories/{id}/history/")
    ),
    # MCP: streamable HTTP and SSE (a session's messages are bound to the key and user that opened it)
    Route("POST", "/mcp/{client_name}/http/{user_id}", "read", True, _mcp("list_memories")),
    Route(
        "POST",
        "/mcp/{client_name}/http/{user_id}",
        "write",
        True,
        _mcp("add_memories", text="x", infer=False),
    ),
    Route("GET", "/mcp/{client_name}/sse/{user_id}", "write", True, _sse),
]
# Routes that name no memory and no scope: health, documentation, the key check, the server's config.
UNSCOPED = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc"), ("GET", "/v1/ping/"), ("GET", "/api/v1/config"),
    # MCP's HTTP GET and DELETE (stateless: no session to open or end) and the SSE messages, which
    # reach a session opened by the same key for an allowed user only
    ("GET", "/mcp/{client_name}/http/{user_id}"), ("DELETE", "/mcp/{client_name}/http/{user_id}"),
    ("POST", "/mcp/messages/"), ("POST", "/mcp/{client_name}/sse/{user_id}/messages/"),
}  # fmt: skip


def served(live: Live) -> set[tuple[str, str]]:
    """(method, path template) of every route the server has."""
    from starlette.routing import Route as StarletteRoute

    return {
        (method, route.path.replace(":uuid", ""))
        for route in live.app_routes
        if isinstance(route, StarletteRoute)
        for method in (route.methods or set()) - {"HEAD"}
    }


def test_the_table_asks_every_route(live: Live) -> None:
    """A route added to the server without an entry here fails: every route is asked as a client."""
    app_routes = served(live)
    asked = {(r.method, r.path) for r in ROUTES}
    assert app_routes - UNSCOPED - asked == set(), "routes no client is asked on: add them to ROUTES"


def answer_ids(response: httpx.Response) -> set[str]:
    """Memory ids in an answer: JSON results or items, JSON lines (exports), MCP tool text."""
    if response.headers.get("content-type", "").startswith("application/x-ndjson"):
        return {json.loads(line)["id"] for line in response.content.splitlines()}
    found: set[str] = set()
    pending: list[Any] = [response.json()]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if isinstance(item.get("id"), str) and UUID.fullmatch(item["id"]):
                found.add(item["id"])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and item[:1] in "[{":
            with contextlib.suppress(ValueError):
                pending.append(json.loads(item))
    return found


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def the_scopes(record: dict[str, Any], scope: dict[str, str]) -> bool:
    return all(record.get(key) == value for key, value in scope.items())


@pytest_slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=client_scopes(), scope=request_scopes(), pick=st.randoms(use_true_random=False))
def test_every_route_answers_403_outside_a_clients_scopes_and_only_its_memories_within(
    live: Live, scopes: dict[str, list[str]], scope: dict[str, str], pick: Any
) -> None:
    live.set_clients(grant("scoped", CLIENT_KEY, scopes=scopes))
    rules = ScopeRules.of(ClientScopes.model_validate(scopes))
    memories = stored(live)
    within = {i for i, record in memories.items() if rules.contains(record)}
    outside = sorted(set(memories) - within)
    some = pick.choice(sorted(live.seeded))
    user_scope = {"user_id": scope.get("user_id", "alice")}
    available = served(live)
    with live.client() as http:
        for route in (r for r in ROUTES if (r.method, r.path) in available):
            asked = user_scope if route.user else scope
            permitted = rules.permits(Scope(**asked))
            what = (route.method, route.path, route.kind, asked)
            if route.kind == "read":
                response = route.call(http, asked, some)
                if not permitted:
                    assert response.status_code == 403, (*what, response.text)
                else:
                    assert response.status_code in (200, 404), (*what, response.text)
                    assert answer_ids(response) <= within, what
            elif route.kind == "write" and not permitted:
                response = route.call(http, asked, some)
                assert response.status_code == 403, (*what, response.text)
            elif route.kind == "read-id":
                response = route.call(http, asked, some)
                expected = 403 if not permitted else 200 if the_scopes(memories[some], asked) else 404
                assert response.status_code == expected, (*what, response.text)
            elif route.kind == "reach-id":
                response = route.call(http, {}, some)
                assert response.status_code == (200 if some in within else 404), (*what, response.text)
            elif route.kind == "reach-id-write" and outside:
                response = route.call(http, {}, pick.choice(outside))
                assert response.status_code == 404, (*what, response.text)
        # Without a scope: exactly what is within reach, no more.
        assert answer_ids(http.get("/memories")) == within
        exported = http.post("/api/v1/backup/export", json={}, headers={"Accept": "application/x-ndjson"})
        assert answer_ids(exported) == within
        # Apps are those that created memories within reach, and this MCP client once it read some.
        apps = {a["name"] for a in http.get("/api/v1/apps/").json()["apps"]}
        assert apps - {"app"} == {memories[i]["app"] for i in within}
    assert essentials(stored(live)) == essentials(memories), "the refused writes changed nothing"


@pytest_slow
def test_read_only_clients_and_mcp_tools_are_refused_writes(live: Live) -> None:
    live.set_clients(grant("reader", CLIENT_KEY, access="readOnly", scopes=EVERY_ID))
    with live.client() as http:
        assert http.get("/memories", params={"user_id": "alice"}).status_code == 200
        assert http.post("/memories", json={"messages": "x", "user_id": "alice"}).status_code == 403
        added = mcp_call(http, "alice", "add_memories", {"text": "x", "infer": False})
        assert added.status_code == 200 and added.json()["result"]["isError"]
    text = metrics_text(live)
    assert 'memory_server_client_denials_total{client="reader"} 2.0' in text


def metrics_text(live: Live) -> str:
    with live.live.client() as admin:
        return admin.get("/metrics").text


@pytest_slow
def test_over_its_rate_a_client_gets_429_with_retry_after_then_recovers(live: Live) -> None:
    scopes = {"scopes": EVERY_ID}
    live.set_clients(
        grant("limited", CLIENT_KEY, quota={"requestsPerSecond": 0.5, "burst": 3}, **scopes),
        grant("other", OTHER_KEY, **scopes),
    )
    with live.client() as http, live.client(OTHER_KEY) as other:
        assert [http.get("/memories", params={"user_id": "bob"}).status_code for _ in range(3)] == [200] * 3
        refused = http.get("/memories", params={"user_id": "bob"})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2", "one token comes back in 2 s at 0.5 a second"
        assert mcp_call(http, "bob", "list_memories", {}).status_code == 429, "MCP counts too"
        assert other.get("/memories", params={"user_id": "bob"}).status_code == 200, "per client"
        live.clock.now += 2.0
        assert http.get("/memories", params={"user_id": "bob"}).status_code == 200
        assert http.get("/memories", params={"user_id": "bob"}).status_code == 429
        live.clock.now += 100.0
        burst = [http.get("/memories", params={"user_id": "bob"}).status_code for _ in range(4)]
        assert burst == [200, 200, 200, 429], "a long pause refills the burst, not more"
    text = metrics_text(live)
    assert 'memory_server_client_throttles_total{client="limited",limit="requests"} 4.0' in text
    assert 'memory_server_client_requests_total{client="other",status="200"} 1.0' in text


@pytest_slow
def test_writes_have_their_own_rate_on_rest_and_mcp(live: Live) -> None:
    quota = {"writesPerSecond": 1, "writeBurst": 1}
    live.set_clients(grant("writer", CLIENT_KEY, quota=quota, scopes=EVERY_ID))
    with live.client() as http:
        added = http.post("/memories", json={"messages": "one", "user_id": "writer-user"})
        assert added.status_code == 200, added.text
        refused = http.post("/memories", json={"messages": "two", "user_id": "writer-user"})
        assert (refused.status_code, refused.headers.get("Retry-After")) == (429, "1")
        assert http.get("/memories", params={"user_id": "writer-user"}).status_code == 200, "reads go on"
        tool = mcp_call(http, "writer-user", "add_memories", {"text": "three", "infer": False})
        assert tool.status_code == 429, "a writing tool call counts as a write"
        assert mcp_call(http, "writer-user", "search_memory", {"query": "one"}).status_code == 200
        live.clock.now += 1.0
        tool = mcp_call(http, "writer-user", "add_memories", {"text": "three", "infer": False})
        assert tool.status_code == 200 and not tool.json()["result"]["isError"]
        assert http.delete("/memories", params={"user_id": "writer-user"}).status_code == 429
        live.clock.now += 1.0
        assert http.delete("/memories", params={"user_id": "writer-user"}).status_code == 200
    text = metrics_text(live)
    assert 'memory_server_client_throttles_total{client="writer",limit="writes"} 3.0' in text


@pytest_slow
def test_a_sse_session_posts_count_against_the_rate(live: Live) -> None:
    live.set_clients(grant("sse", CLIENT_KEY, quota={"requestsPerSecond": 1, "burst": 2}, scopes=EVERY_ID))
    with live.client() as http, http.stream("GET", "/mcp/app/sse/alice") as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: closing the iterator would close the stream
        endpoint = next(line for line in lines if line.startswith("data:"))[5:].strip()
        message = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert http.post(endpoint, json=message).status_code == 202
        refused = http.post(endpoint, json=message)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"


@pytest_slow
def test_a_removed_or_rotated_key_is_refused_once_the_file_changes(
    live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stated bound: with the default period (2 s), the server refuses a removed or rotated key
    within the period of the file changing (and a second for the reload itself, on a busy machine)."""
    bound = DEFAULT_CLIENTS_RELOAD_SECONDS + 1.0
    path = tmp_path / "clients.json"
    write_clients(path, [grant("rotating", CLIENT_KEY, scopes=EVERY_ID)])
    caplog.set_level(logging.DEBUG)
    watcher = ClientsFileWatcher(path, live.directory).start()
    assert watcher.reload_seconds == DEFAULT_CLIENTS_RELOAD_SECONDS
    try:
        with live.client() as old:
            assert old.get("/memories", params={"user_id": "alice"}).status_code == 200
            write_clients(path, [grant("rotating", OTHER_KEY, scopes=EVERY_ID)])
            wait_for_status(old, 401, bound=bound)
            with live.client(OTHER_KEY) as new:
                assert new.get("/memories", params={"user_id": "alice"}).status_code == 200
                write_clients(path, [])
                wait_for_status(new, 401, bound=bound)
    finally:
        watcher.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert CLIENT_KEY not in logged and OTHER_KEY not in logged
    assert key_sha256(CLIENT_KEY) not in logged


def wait_for_status(http: httpx.Client, status: int, bound: float) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if http.get("/memories", params={"user_id": "alice"}).status_code == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"not {status} within {bound} s")


@pytest_slow
def test_no_key_nor_hash_in_metrics(live: Live) -> None:
    live.set_clients(grant("quiet", CLIENT_KEY, scopes=EVERY_ID))
    with live.client() as http:
        http.get("/memories", params={"user_id": "alice"})
        http.get("/memories", headers={"X-API-Key": "x" * 40})
    text = metrics_text(live)
    assert 'client="quiet"' in text
    with live.client() as http:
        assert http.get("/metrics").status_code == 403, "a client sees no other client's counts"
    for secret in (CLIENT_KEY, key_sha256(CLIENT_KEY), API_KEY, READ_ONLY_KEY, "x" * 40):
        assert secret not in text


@pytest_slow
def test_clients_authenticate_concurrently_with_reloads(live: Live) -> None:
    """Replacing the directory while requests run never refuses a client that stays."""
    live.set_clients(grant("steady", CLIENT_KEY, scopes=EVERY_ID))
    stop = threading.Event()

    def reload() -> None:
        while not stop.is_set():
            live.set_clients(grant("steady", CLIENT_KEY, scopes=EVERY_ID), grant("x", OTHER_KEY))

    thread = threading.Thread(target=reload)
    thread.start()
    try:
        with live.client() as http:
            statuses = {http.get("/memories", params={"user_id": "alice"}).status_code for _ in range(30)}
    finally:
        stop.set()
        thread.join()
    assert statuses == {200}


# --- the embedded server ----------------------------------------------------------------------------

CLIENTS_YAML = """\
clients:
  - name: notes-app
    key: notes-app-key-for-trying-scopes
    access: readWrite
    scopes: {userIds: ["team-a-*"], agentIds: ["*"], runIds: ["*"]}
    quota: {writesPerSecond: 0.001, writeBurst: 1}
"""


@pytest_slow
def test_the_embedded_server_takes_clients_from_a_file(tmp_path: Path) -> None:
    """A newcomer's way to try scopes: `memory-operator server --embedded --clients-file clients.yaml`."""
    import os
    import signal
    import subprocess
    import sys

    from .conftest import free_port
    from .test_embedded import READY_TIMEOUT, is_ready

    clients_file = tmp_path / "clients.yaml"
    clients_file.write_text(CLIENTS_YAML)
    port = free_port()
    command = [
        sys.executable, "-m", "memory_operator", "server", "--embedded", "--data-dir", str(tmp_path / "data"),
        "--clients-file", str(clients_file), "--port", str(port), "--log-format", "plain",
    ]  # fmt: skip
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "MEM0_TELEMETRY": "false", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
        assert banner[3].strip() == f"Clients: 1 from {clients_file}", banner
        deadline = time.monotonic() + READY_TIMEOUT
        while not is_ready(port):
            assert process.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        headers = {"X-API-Key": "notes-app-key-for-trying-scopes"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as http:
            mine = http.post("/memories", json={"messages": "likes tea", "user_id": "team-a-ann"})
            assert mine.status_code == 200, mine.text
            assert http.post("/memories", json={"messages": "x", "user_id": "team-a-ann"}).status_code == 429
            assert http.get("/memories", params={"user_id": "bob"}).status_code == 403
            assert [m["memory"] for m in http.get("/memories").json()["results"]] == ["likes tea"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_clients_file_that_does_not_load_stops_the_server_at_start(tmp_path: Path) -> None:
    from memory_operator.server.main import clients_watcher
    from memory_operator.server.settings import ServerSettings

    path = tmp_path / "clients.yaml"
    path.write_text("clients:\n  - {name: a, key: short}\n")
    with pytest.raises(SystemExit) as stopped:
        clients_watcher(ServerSettings(api_key="k", clients_file=path), ServerMetrics())
    assert "clients" in str(stopped.value) and "key" in str(stopped.value)
