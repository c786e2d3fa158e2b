"""Upstream's shapes and routes beyond its clients' own tests: mem0's server routes (update, history,
bulk delete, filters-only scope, threshold), OpenMemory's (bare-list archive, apps with pause and
resume, related memories, export and import), lenient bodies, and CORS."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.transfer import IMPORT_MAX_RECORDS

from .conftest import API_KEY, LiveServer, ServerThread, local_settings
from .test_mcp import call

pytestmark = pytest.mark.slow
MEMORIES = "/api/v1/memories/"
JSON_LINES = {"Accept": "application/x-ndjson"}


def add(client: httpx.Client, user: str, text: str, **fields: Any) -> dict[str, Any]:
    response = client.post(MEMORIES, json={"user_id": user, "text": text, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_mem0_server_update_history_and_bulk_delete(server: LiveServer, user: str) -> None:
    with server.client() as client:
        added = client.post(
            "/memories", json={"messages": [{"role": "user", "content": "v1"}], "user_id": user}
        )
        result = added.json()["results"][0]
        assert (result["event"], result["memory"]) == ("ADD", "v1") and result["hash"]
        memory_id = result["id"]
        updated = client.put(f"/memories/{memory_id}", json={"text": "v2", "metadata": {"k": 1}})
        assert updated.status_code == 200 and updated.json()["memory"] == "v2"
        assert updated.json()["message"] == "Memory updated successfully!"
        client.put(f"/memories/{memory_id}", json={"text": "v3"})
        history = client.get(f"/memories/{memory_id}/history").json()
        assert [(h["event"], h["old_memory"], h["new_memory"]) for h in history] == [
            ("ADD", None, "v1"),
            ("UPDATE", "v1", "v2"),
            ("UPDATE", "v2", "v3"),
        ]
        assert client.get(f"/memories/{memory_id}").json()["metadata"] == {"k": 1}, (
            "no scope: the key's reach"
        )
        client.post("/memories", json={"messages": "other", "user_id": user, "agent_id": "a"})
        assert client.delete("/memories", params={"user_id": user, "agent_id": "a"}).status_code == 200
        assert [r["memory"] for r in client.get("/memories", params={"user_id": user}).json()["results"]] == [
            "v3"
        ]
        assert client.delete("/memories", params={}).status_code == 422, "a bulk delete needs a scope"
        assert client.delete("/memories", params={"user_id": user}).json() == {
            "message": "All relevant memories deleted"
        }
        assert client.get(f"/memories/{memory_id}/history").status_code == 404


def test_search_takes_its_scope_from_filters_and_a_threshold(server: LiveServer, user: str) -> None:
    with server.client() as client:
        client.post("/memories", json={"messages": "Alice runs the billing team", "user_id": user})
        scoped = {"query": "who runs billing", "filters": {"user_id": user}}
        assert [r["memory"] for r in client.post("/search", json=scoped).json()["results"]] == [
            "Alice runs the billing team"
        ]
        assert client.post("/search", json={**scoped, "threshold": 0.99}).json()["results"] == []
        also = client.post("/search", json={**scoped, "filters": {"AND": [{"user_id": {"eq": user}}]}})
        assert len(also.json()["results"]) == 1
        clash = client.post("/search", json={**scoped, "user_id": f"{user}-other"})
        assert clash.status_code == 422 and clash.json()["detail"][0]["loc"] == ["user_id"]
        for widened in ({"OR": [{"user_id": user}]}, {"user_id": "*"}, {"user_id": {"in": [user]}}):
            response = client.post("/search", json={"query": "x", "filters": widened})
            assert response.status_code == 422, (widened, response.text)


def test_bodies_ignore_unknown_fields_and_nulls_but_stay_bounded(server: LiveServer, user: str) -> None:
    with server.client() as client:
        created = client.post(
            MEMORIES,
            json={
                "user_id": user,
                "text": "lenient",
                "metadata": None,
                "app": None,
                "unknown": {"x": [1] * 10},
            },
        )
        assert created.status_code == 200, created.text
        assert created.json()["app_name"] == "openmemory" and created.json()["metadata_"] is None
        listed = client.post(
            f"{MEMORIES}filter", json={"user_id": user, "page": None, "sort_column": None, "x": 1}
        )
        assert listed.status_code == 200 and listed.json()["total"] == 1
        for refused in (
            {"user_id": None, "text": "x"},
            {"user_id": "*", "text": "x", "unknown": 1},
            {"user_id": user, "text": "x" * 70_000},
        ):
            assert client.post(MEMORIES, json=refused).status_code in (413, 422), refused
        assert client.get(MEMORIES, params={"user_id": user, "userid": user}).status_code == 422


def test_openmemory_shapes_archive_list_and_get_text(server: LiveServer, user: str) -> None:
    with server.client() as client:
        first, second = add(client, user, "one")["id"], add(client, user, "two")["id"]
        got = client.get(f"{MEMORIES}{first}").json()
        assert got["text"] == got["content"] == "one", "OpenMemory's GET by id names the text `text`"
        archived = client.post(f"{MEMORIES}actions/archive", json=[first])
        assert (
            archived.status_code == 200 and archived.json()["message"] == "Successfully archived 1 memories"
        )
        archived = client.post(f"{MEMORIES}actions/archive", params={"user_id": user}, json=[second])
        assert archived.status_code == 200
        assert (
            client.post(
                f"{MEMORIES}actions/archive", params={"user_id": f"{user}-x"}, json=[first]
            ).status_code
            == 404
        )
        states = {
            i["id"]: i["state"]
            for i in client.post(f"{MEMORIES}filter", json={"user_id": user, "show_archived": True}).json()[
                "items"
            ]
        }
        assert states == {first: "archived", second: "archived"}


async def test_apps_pause_and_resume(server: LiveServer, user: str) -> None:
    with server.client() as client:
        add(client, user, "from cursor", app="cursor")
        paused = client.put("/api/v1/apps/cursor", params={"is_active": False, "user_id": user})
        assert paused.json() == {"status": "success", "message": "Updated app details successfully"}
        refused = client.post(MEMORIES, json={"user_id": user, "text": "more", "app": "cursor"})
        assert refused.status_code == 403 and "paused" in refused.json()["detail"]
        other = client.post(MEMORIES, json={"user_id": f"{user}-other", "text": "fine", "app": "cursor"})
        assert other.status_code == 200, "paused for this user only"
        apps = client.get("/api/v1/apps/", params={"user_id": user}).json()["apps"]
        assert [(a["id"], a["is_active"], a["total_memories_created"]) for a in apps] == [
            ("cursor", False, 1)
        ]
        assert client.get("/api/v1/apps/cursor", params={"user_id": user}).json()["is_active"] is False
        assert client.get("/api/v1/apps/nothing-here", params={"user_id": user}).status_code == 404
        unknown = client.put("/api/v1/apps/nothing-here", params={"is_active": False})
        assert unknown.status_code == 404, "without a user, only apps that exist"
    refused_mcp = await call(server, user, "add_memories", {"text": "via mcp"}, client_name="cursor")
    assert refused_mcp[0] == "error" and "paused" in refused_mcp[1]
    with server.client() as client:
        client.put("/api/v1/apps/cursor", params={"is_active": True, "user_id": user})
        assert (
            client.post(MEMORIES, json={"user_id": user, "text": "again", "app": "cursor"}).status_code == 200
        )
        memories = client.get("/api/v1/apps/cursor/memories", params={"user_id": user}).json()
        assert [m["content"] for m in memories["memories"]] == ["again", "from cursor"]


def test_related_memories_share_categories(server: LiveServer, user: str) -> None:
    with server.client() as client:
        source = add(client, user, "db failover", categories=["incident", "database"])["id"]
        both = add(client, user, "replica lag", categories=["incident", "database"])["id"]
        one = add(client, user, "pager noise", categories=["incident"])["id"]
        add(client, user, "lunch menu", categories=["food"])
        add(client, f"{user}-other", "someone else's incident", categories=["incident"])
        related = client.get(f"{MEMORIES}{source}/related", params={"user_id": user}).json()
        assert [i["id"] for i in related["items"]] == [both, one] and related["size"] == 5


def test_export_import_round_trips_exactly(server: LiveServer, user: str) -> None:
    with server.client() as client:
        first = add(
            client, user, "kept fact", metadata={"team": "core"}, categories=["runbook"], app="cursor"
        )["id"]
        second = add(client, user, "archived fact", expiration_date="2001-01-01")["id"]
        client.put(f"{MEMORIES}{first}", json={"memory_content": "kept fact, revised"})
        client.post(f"{MEMORIES}actions/archive", json=[second])
        exported = client.post("/api/v1/backup/export", json={"user_id": user}, headers=JSON_LINES)
        assert exported.headers["content-type"] == "application/x-ndjson"
        lines = exported.content.splitlines()
        assert len(lines) == 2 and {json.loads(x)["id"] for x in lines} == {first, second}
        assert client.delete("/memories", params={"user_id": user}).status_code == 200
        imported = client.post(
            "/api/v1/backup/import",
            content=exported.content,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert imported.json()["imported"] == 2, imported.text
        again = client.post("/api/v1/backup/export", json={"user_id": user}, headers=JSON_LINES)
        assert again.content == exported.content, "export, import, export: the same lines"
        assert [h["event"] for h in client.get(f"/memories/{first}/history").json()] == ["ADD", "UPDATE"]
        found = client.post("/search", json={"query": "revised fact", "user_id": user}).json()["results"]
        assert [r["id"] for r in found] == [first], "imported memories are embedded and searchable"
        skipped = client.post(
            "/api/v1/backup/import",
            params={"mode": "skip"},
            content=exported.content,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert (skipped.json()["imported"], skipped.json()["skipped"]) == (0, 2)


def test_an_import_never_overwrites_another_scope(server: LiveServer, user: str) -> None:
    alice, mallory = f"{user}-alice", f"{user}-mallory"
    with server.client() as client:
        secret = add(client, alice, "alice's secret")["id"]
        forged = json.dumps({"id": secret, "content": "overwritten", "user_id": mallory}).encode()
        response = client.post(
            "/api/v1/backup/import",
            params={"user_id": mallory},
            content=forged,
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert response.json() == {
            "message": f'Import completed into user "{mallory}"',
            "imported": 1,
            "skipped": 0,
            "renamed": 1,
        }
        assert (
            client.get(f"{MEMORIES}{secret}", params={"user_id": alice}).json()["content"] == "alice's secret"
        )
        mine = client.get(MEMORIES, params={"user_id": mallory}).json()["items"]
        assert [(m["content"], m["id"] != secret) for m in mine] == [("overwritten", True)]


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"not json\n", 400),
        (b'{"content": "no id"}\n', 422),
        (json.dumps({"id": "00000000-0000-4000-8000-000000000000", "content": "x"}).encode(), 422),
        (b"PK\x03\x04broken", 400),
        (b"\x1f\x8bbroken", 400),
        (b'{"id": "00000000-0000-4000-8000-000000000000", "content": "x"}\n' * 2_000, 413),
        (
            gzip.compress(
                b'{"id": "00000000-0000-4000-8000-000000000000", "content": "x"}\n' * (IMPORT_MAX_RECORDS + 1)
            ),
            400,
        ),
    ],
)
def test_bad_imports_are_refused(server: LiveServer, content: bytes, status: int) -> None:
    with server.client() as client:
        response = client.post(
            "/api/v1/backup/import", content=content, headers={"Content-Type": "application/x-ndjson"}
        )
    assert response.status_code == status, response.text
    assert len(response.content) < 4096


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[LiveServer]:
    settings = local_settings(Path(tmp_path_factory.mktemp("cors")))
    metrics = ServerMetrics()
    service = build_service(settings, ServerConfig(), metrics, embedding_model=embedding_model)
    slot = ServiceSlot(build=lambda: service, service=service)
    with ServerThread(slot, metrics, cors_origins=("http://localhost:3000",)) as live:
        yield live


def test_cors_is_off_unless_origins_are_allowed(server: LiveServer, cors_server: LiveServer) -> None:
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    off = httpx.options(f"{server.url}{MEMORIES}filter", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on = httpx.options(f"{cors_server.url}{MEMORIES}filter", headers=preflight)
    assert on.status_code == 200 and on.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in on.headers["access-control-allow-headers"].lower()
    other = httpx.options(
        f"{cors_server.url}{MEMORIES}filter", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    refused = httpx.get(
        f"{cors_server.url}{MEMORIES}", params={"user_id": "u"}, headers={"Origin": "http://localhost:3000"}
    )
    assert (
        refused.status_code == 401
        and refused.headers["access-control-allow-origin"] == "http://localhost:3000"
    )
    keyed = httpx.get(
        f"{cors_server.url}{MEMORIES}",
        params={"user_id": "u"},
        headers={"Origin": "http://localhost:3000", "Authorization": f"Bearer {API_KEY}"},
    )
    assert (
        keyed.status_code == 200 and keyed.headers["access-control-allow-origin"] == "http://localhost:3000"
    )


def test_expiration_date_is_kept_through_mem0s_update(server: LiveServer, user: str) -> None:
    with server.client() as client:
        memory_id = add(client, user, "until spring", expiration_date="2030-03-01")["id"]
        client.put(f"/memories/{memory_id}", json={"text": "until spring, revised"})
        assert client.get(f"/memories/{memory_id}").json()["expiration_date"] == "2030-03-01", (
            "absent keeps it"
        )
        tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
        client.put(f"/memories/{memory_id}", json={"expiration_date": tomorrow})
        assert client.get(f"/memories/{memory_id}").json()["expiration_date"] == tomorrow


async def test_mcp_add_results_name_their_event(server: LiveServer, user: str) -> None:
    added = json.loads(await call(server, user, "add_memories", {"text": "MCP fact", "infer": True}))
    assert [(r["memory"], r["event"]) for r in added["results"]] == [("MCP fact", "ADD")]
