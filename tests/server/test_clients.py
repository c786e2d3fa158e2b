"""Per-client keys (MemoryClients): scopes as allow-lists of ids and prefixes, quotas, the clients file.

The rules are checked by property against a reference reading of the scopes; the live server is then
asked, for generated scopes and generated request ids, on every kind of route (OpenMemory REST, mem0
REST and client paths, MCP over streamable HTTP and SSE): a request outside the client's scopes gets
403 and never data, a request within gets only memories within them, and requests without a scope
see exactly the memories within reach.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
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

    def __init__(self, live: LiveServer, directory: ClientDirectory, clock: Clock) -> None:
        self.live, self.directory, self.clock = live, directory, clock
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
    with ServerThread(slot, metrics, keys=keys) as server:
        state = Live(server, directory, clock)
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


def scoped_reads(scope: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None, Any]]:
    """Every reading route, asked for this scope: (method, path, query, body)."""
    return [
        ("GET", "/memories", scope, None),
        ("GET", "/v1/memories/", scope, None),
        ("POST", "/search", None, {"query": "fact", **scope}),
        ("POST", "/v1/memories/search/", None, {"query": "fact", **scope}),
        ("POST", "/v2/memories/", None, {"filters": scope}),
        ("POST", "/v2/memories/search/", None, {"query": "fact", "filters": scope}),
        (
            "POST",
            "/v3/memories/search/",
            None,
            {"query": "f", "filters": {"AND": [{k: v} for k, v in scope.items()]}},
        ),
    ]


def user_reads(user: str) -> list[tuple[str, str, dict[str, Any] | None, Any]]:
    """OpenMemory's routes, which name a user only."""
    return [
        ("GET", MEMORIES, {"user_id": user}, None),
        ("POST", f"{MEMORIES}filter", None, {"user_id": user}),
        ("GET", "/api/v1/stats", {"user_id": user}, None),
        ("GET", "/api/v1/apps/", {"user_id": user}, None),
        ("GET", "/api/v1/memories/categories", {"user_id": user}, None),
    ]


def scoped_writes(scope: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None, Any]]:
    """Writing routes; asked only when the scope is refused (they would change the seeded memories)."""
    user = {"user_id": scope["user_id"]} if "user_id" in scope else {}
    return [
        ("POST", "/memories", None, {"messages": "new", **scope}),
        ("POST", "/v1/memories/", None, {"messages": [{"role": "user", "content": "new"}], **scope}),
        ("DELETE", "/memories", scope, None),
        ("DELETE", "/v1/memories/", scope, None),
        *(
            [
                ("POST", MEMORIES, None, {"text": "new", **user}),
                ("POST", f"{MEMORIES}actions/pause", None, {"global_pause": True, **user}),
                ("PUT", "/api/v1/apps/alice", {**user, "is_active": False}, None),
                ("POST", "/api/v1/backup/export", None, user),
            ]
            if user
            else []
        ),
    ]


@pytest_slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=client_scopes(), scope=request_scopes())
def test_a_client_gets_403_outside_its_scopes_and_only_its_memories_within(
    live: Live, scopes: dict[str, list[str]], scope: dict[str, str]
) -> None:
    live.set_clients(grant("scoped", CLIENT_KEY, scopes=scopes))
    rules = ScopeRules.of(ClientScopes.model_validate(scopes))
    memories = stored(live)
    within = {i for i, record in memories.items() if rules.contains(record)}
    assert set(live.seeded) <= set(memories)
    permitted = rules.permits(Scope(**scope))
    user = scope.get("user_id", "alice")
    user_permitted = rules.permits(Scope(user_id=user))
    with live.client() as http:
        for method, path, query, body in scoped_reads(scope):
            response = http.request(method, path, params=query, json=body)
            if not permitted:
                assert response.status_code == 403, (method, path, scope, response.text)
                continue
            assert response.status_code == 200, (method, path, response.text)
            assert ids_of(response) <= within, (method, path, scope)
        for method, path, query, body in user_reads(user):
            response = http.request(method, path, params=query, json=body)
            assert response.status_code == (200 if user_permitted else 403), (method, path, response.text)
        if not permitted:
            for method, path, query, body in scoped_writes(scope):
                response = http.request(method, path, params=query, json=body)
                assert response.status_code == 403, (method, path, scope, response.text)
        # MCP names a user only, in its path.
        listed = mcp_call(http, user, "list_memories", {})
        assert listed.status_code == (200 if user_permitted else 403), listed.text
        if user_permitted:
            text = listed.json()["result"]["content"][0]["text"]
            assert {m["id"] for m in json.loads(text)} <= within
        sse = http.get(f"/mcp/app/sse/{user}") if not user_permitted else None
        assert sse is None or sse.status_code == 403
        # Without a scope: exactly what is within reach, no more.
        assert ids_of(http.get("/memories")) == within
        exported = http.post("/api/v1/backup/export", json={}, headers={"Accept": "application/x-ndjson"})
        assert {json.loads(line)["id"] for line in exported.content.splitlines()} == within
        # Apps are those that created memories within reach, and this MCP client once it read some.
        apps = {a["name"] for a in http.get("/api/v1/apps/").json()["apps"]}
        assert apps - {"app"} == {memories[i]["app"] for i in within}
        for memory_id in list(live.seeded)[:: len(live.seeded) // 6]:
            got = http.get(f"/memories/{memory_id}")
            assert got.status_code == (200 if memory_id in within else 404), got.text
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
    """The bound: the file is checked every `reload_seconds`; the next request after that is refused."""
    reload_seconds = 0.2
    path = tmp_path / "clients.json"
    write_clients(path, [grant("rotating", CLIENT_KEY, scopes=EVERY_ID)])
    caplog.set_level(logging.DEBUG)
    watcher = ClientsFileWatcher(path, live.directory, reload_seconds).start()
    try:
        with live.client() as old:
            assert old.get("/memories", params={"user_id": "alice"}).status_code == 200
            write_clients(path, [grant("rotating", OTHER_KEY, scopes=EVERY_ID)])
            changed = time.monotonic()
            wait_for_status(old, 401, bound=reload_seconds * 2 + 1.0)
            assert time.monotonic() - changed <= reload_seconds * 2 + 1.0
            with live.client(OTHER_KEY) as new:
                assert new.get("/memories", params={"user_id": "alice"}).status_code == 200
                write_clients(path, [])
                wait_for_status(new, 401, bound=reload_seconds * 2 + 1.0)
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
