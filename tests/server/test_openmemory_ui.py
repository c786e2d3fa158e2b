"""OpenMemory's UI, replayed: every request its source sends, in order, and the shape of every answer.

The requests are taken from the UI of OpenMemory's last release (mem0 repository, `openmemory/ui`:
`hooks/useStats.ts`, `hooks/useFiltersApi.ts`, `hooks/useMemoriesApi.ts`, `hooks/useAppsApi.ts`,
`hooks/useConfig.ts`, `components/form-view.tsx`, `components/dashboard/Install.tsx`) and kept here as
data. The shapes are the TypeScript interfaces those files read the answers into (and, where the UI
declares a type its server never sent, what OpenMemory's API answered). The UI sends no key; a
deployment puts it behind a proxy that adds one, as the replay does with `Authorization`.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import API_KEY, LiveServer

pytestmark = pytest.mark.slow
OPTIONAL_STR = (str, type(None))
OPTIONAL_DICT = (dict, type(None))

# -- the shapes the UI reads ---------------------------------------------------------------------

API_MEMORY_ITEM = {  # useMemoriesApi.ts ApiMemoryItem (created_at: OpenMemory sent epoch seconds)
    "id": str,
    "content": str,
    "created_at": int,
    "state": str,
    "app_id": str,
    "categories": [str],
    "metadata_": OPTIONAL_DICT,
    "app_name": str,
}
PAGE = {"items": [API_MEMORY_ITEM], "total": int, "page": int, "size": int, "pages": int}  # ApiResponse
SIMPLE_MEMORY = {
    "id": str,
    "text": str,
    "created_at": int,
    "state": str,
    "categories": [str],
    "app_name": str,
}
ACCESS_LOG = {
    "total": int,
    "page": int,
    "page_size": int,
    "logs": [{"id": str, "app_name": str, "accessed_at": str}],
}
STATS = {"total_memories": int, "total_apps": int, "apps": [{"id": str, "name": str}]}  # APIStatsResponse
CATEGORIES = {"categories": [{"id": str, "name": str}], "total": int}  # filtersSlice Category
APP = {
    "id": str,
    "name": str,
    "total_memories_created": int,
    "total_memories_accessed": int,
    "is_active": bool,
}
APPS = {"total": int, "page": int, "page_size": int, "apps": [APP]}
APP_DETAILS = {
    "is_active": bool,
    "total_memories_created": int,
    "total_memories_accessed": int,
    "first_accessed": OPTIONAL_STR,
    "last_accessed": OPTIONAL_STR,
}
APP_MEMORY = {  # appsSlice.ts AppMemory, as OpenMemory's apps router filled it
    "id": str,
    "content": str,
    "state": str,
    "app_id": str,
    "metadata_": OPTIONAL_DICT,
    "created_at": str,
    "categories": [str],
}
APP_MEMORIES = {"total": int, "page": int, "page_size": int, "memories": [APP_MEMORY]}
ACCESSED = {
    "total": int,
    "page": int,
    "page_size": int,
    "memories": [{"memory": APP_MEMORY, "access_count": int}],
}
CONFIG = {
    "openmemory": {"custom_instructions": OPTIONAL_STR},
    "mem0": {"llm": OPTIONAL_DICT, "embedder": dict},
}
MESSAGE = {"message": str}


@dataclass
class UiRequest:
    """One request of the UI: where it comes from, what it sends, what it must get back."""

    source: str
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    shape: Any = None
    status: int = 200
    # Why a request is answered otherwise than OpenMemory answered it (documented in server-api.md).
    differs: str = ""


USER = "{user}"
MEMORY = "{memory_id}"
APP_ID = "openmemory"

UI_REQUESTS = [
    UiRequest("useStats.fetchStats", "GET", "/api/v1/stats", {"user_id": USER}, shape=STATS),
    UiRequest(
        "useFiltersApi.fetchCategories",
        "GET",
        "/api/v1/memories/categories",
        {"user_id": USER},
        shape=CATEGORIES,
    ),
    UiRequest(
        "useMemoriesApi.createMemory",
        "POST",
        "/api/v1/memories/",
        json={
            "user_id": USER,
            "text": "I prefer dark mode in every editor",
            "infer": False,
            "app": "openmemory",
        },
        shape={"id": str, "content": str},
    ),
    UiRequest(
        "useMemoriesApi.fetchMemories",
        "POST",
        "/api/v1/memories/filter",
        # `search_query: undefined` and the other unset filters are left out by JSON.stringify.
        json={"user_id": USER, "page": 1, "size": 10},
        shape=PAGE,
    ),
    UiRequest(
        "useMemoriesApi.fetchMemories (filtered)",
        "POST",
        "/api/v1/memories/filter",
        json={
            "user_id": USER,
            "page": 1,
            "size": 10,
            "search_query": "dark",
            "app_ids": [APP_ID],
            "category_ids": None,
            "sort_column": "memory",
            "sort_direction": "asc",
            "show_archived": False,
        },
        shape=PAGE,
    ),
    UiRequest(
        "useMemoriesApi.fetchMemoryById",
        "GET",
        f"/api/v1/memories/{MEMORY}",
        {"user_id": USER},
        shape=SIMPLE_MEMORY,
    ),
    UiRequest(
        "useMemoriesApi.fetchAccessLogs",
        "GET",
        f"/api/v1/memories/{MEMORY}/access-log",
        {"page": 1, "page_size": 10},
        shape=ACCESS_LOG,
    ),
    UiRequest(
        "useMemoriesApi.fetchRelatedMemories",
        "GET",
        f"/api/v1/memories/{MEMORY}/related",
        {"user_id": USER},
        shape=PAGE,
    ),
    UiRequest(
        "useMemoriesApi.updateMemory",
        "PUT",
        f"/api/v1/memories/{MEMORY}",
        json={"memory_id": MEMORY, "memory_content": "I prefer dark mode everywhere", "user_id": USER},
        shape={"id": str, "content": str},
    ),
    UiRequest(
        "useMemoriesApi.updateMemoryState",
        "POST",
        "/api/v1/memories/actions/pause",
        json={"memory_ids": [MEMORY], "all_for_app": True, "state": "paused", "user_id": USER},
        shape=MESSAGE,
    ),
    UiRequest(
        "useAppsApi.fetchApps",
        "GET",
        "/api/v1/apps/",
        {"page": 1, "page_size": 10, "sort_by": "name", "sort_direction": "asc"},
        shape=APPS,
    ),
    UiRequest(
        "useAppsApi.fetchApps (filtered)",
        "GET",
        "/api/v1/apps/",
        {
            "page": 1,
            "page_size": 10,
            "name": "open",
            "is_active": "true",
            "sort_by": "memories",
            "sort_direction": "desc",
        },
        shape=APPS,
    ),
    UiRequest("useAppsApi.fetchAppDetails", "GET", f"/api/v1/apps/{APP_ID}", shape=APP_DETAILS),
    UiRequest(
        "useAppsApi.fetchAppMemories",
        "GET",
        f"/api/v1/apps/{APP_ID}/memories",
        {"page": 1, "page_size": 10},
        shape=APP_MEMORIES,
    ),
    UiRequest(
        "useAppsApi.fetchAppAccessedMemories",
        "GET",
        f"/api/v1/apps/{APP_ID}/accessed",
        {"page": 1, "page_size": 10},
        shape=ACCESSED,
    ),
    UiRequest(
        "useAppsApi.updateAppDetails",
        "PUT",
        f"/api/v1/apps/{APP_ID}",
        {"is_active": "false"},
        shape={"status": str},
    ),
    UiRequest(
        "useAppsApi.updateAppDetails",
        "PUT",
        f"/api/v1/apps/{APP_ID}",
        {"is_active": "true"},
        shape={"status": str},
    ),
    UiRequest("useConfig.fetchConfig", "GET", "/api/v1/config", shape=CONFIG),
    UiRequest(
        "useConfig.saveConfig",
        "PUT",
        "/api/v1/config",
        json={"openmemory": {"custom_instructions": None}, "mem0": {}},
        status=405,
        differs="the MemoryStore (or the server's flags) configures the server, not the UI",
    ),
    UiRequest(
        "useConfig.resetConfig",
        "POST",
        "/api/v1/config/reset",
        status=404,
        differs="configuration is read-only",
    ),
    UiRequest(
        "useConfig.saveLLMConfig", "PUT", "/api/v1/config/mem0/llm", json={}, status=404, differs="read-only"
    ),
    UiRequest(
        "useConfig.saveEmbedderConfig",
        "PUT",
        "/api/v1/config/mem0/embedder",
        json={},
        status=404,
        differs="read-only",
    ),
    UiRequest(
        "useMemoriesApi.deleteMemories",
        "DELETE",
        "/api/v1/memories/",
        json={"memory_ids": [MEMORY], "user_id": USER},
        shape=MESSAGE,
    ),
]


def filled(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names) if "{" in value else value
    if isinstance(value, dict):
        return {k: filled(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, names) for v in value]
    return value


def mismatches(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Where an answer differs from the shape: a dict of keys, a one-item list, or (tuple of) types."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        found = []
        for key, inner in shape.items():
            if key not in value:
                found.append(f"{where}.{key}: missing")
            else:
                found.extend(mismatches(value[key], inner, f"{where}.{key}"))
        return found
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [m for n, item in enumerate(value) for m in mismatches(item, shape[0], f"{where}[{n}]")]
    kinds = shape if isinstance(shape, tuple) else (shape,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    return [] if ok else [f"{where}: expected {shape}, got {type(value).__name__}"]


def touch_through_mcp(server: LiveServer, user: str) -> None:
    """What fills the access log and the apps' accessed memories: an MCP client's search and list."""
    for tool, arguments in (("search_memory", {"query": "editor theme"}), ("list_memories", {})):
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        response = httpx.post(
            f"{server.url}/mcp/openmemory/http/{user}",
            json=request,
            headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 200 and not response.json()["result"]["isError"], response.text


def test_the_ui_requests_get_the_answers_it_reads(server: LiveServer, user: str) -> None:
    names = {"user": user, "memory_id": ""}
    with server.client() as client:
        for request in UI_REQUESTS:
            if request.path.endswith("/access-log") or request.path.endswith("/accessed"):
                touch_through_mcp(server, user)
            response = client.request(
                request.method,
                filled(request.path, names),
                params=filled(request.params, names),
                json=filled(request.json, names),
            )
            assert response.status_code == request.status, (
                request.source,
                response.status_code,
                response.text,
            )
            if request.shape is not None:
                answer = response.json()
                assert mismatches(answer, request.shape) == [], (request.source, answer)
            if request.source == "useMemoriesApi.createMemory":
                names["memory_id"] = response.json()["id"]
            if request.source == "useAppsApi.fetchAppAccessedMemories":
                assert response.json()["memories"], "the MCP search shows among the app's accessed memories"
            if request.source == "useMemoriesApi.fetchAccessLogs":
                assert [e["access_type"] for e in response.json()["logs"]] == ["list", "search"]
        gone = client.get(f"/api/v1/memories/{names['memory_id']}", params={"user_id": user})
        assert gone.status_code == 404, "the last request deleted the memory"


def test_the_settings_page_exports_and_imports_a_zip(server: LiveServer, user: str) -> None:
    """form-view.tsx: export with `Accept: application/zip`, import the same zip as a multipart form."""
    with server.client() as client:
        created = client.post(
            "/api/v1/memories/", json={"user_id": user, "text": "exported fact", "app": "openmemory"}
        )
        memory_id = created.json()["id"]
        exported = client.post(
            "/api/v1/backup/export",
            json={"user_id": user},
            headers={"Content-Type": "application/json", "Accept": "application/zip"},
        )
        assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            assert set(archive.namelist()) == {"memories.json", "memories.jsonl.gz"}
            summary = json.loads(archive.read("memories.json"))
            lines = gzip.decompress(archive.read("memories.jsonl.gz")).decode().splitlines()
        assert [m["id"] for m in summary["memories"]] == [memory_id]
        record = json.loads(lines[0])
        assert {"id", "content", "metadata", "created_at", "updated_at", "state", "app", "categories"} <= set(
            record
        )
        client.request("DELETE", "/api/v1/memories/", json={"memory_ids": [memory_id], "user_id": user})
        imported = client.post(
            "/api/v1/backup/import",
            files={"file": ("memories_export.zip", exported.content, "application/zip")},
            data={"user_id": user},
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["message"] == f'Import completed into user "{user}"'
        back = client.get(f"/api/v1/memories/{memory_id}", params={"user_id": user}).json()
        assert (back["content"], back["app_name"]) == ("exported fact", "openmemory")


def test_the_install_snippet_url_opens_an_mcp_session(server: LiveServer, user: str) -> None:
    """Install.tsx: `${URL}/mcp/openmemory/sse/${user}` is where every client is pointed."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("GET", f"{server.url}/mcp/openmemory/sse/{user}", headers=headers) as stream,
    ):
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "event: endpoint"
        assert next(lines).startswith("data: /mcp/messages/?session_id=")
