"""Self-service erasure on the live server (real mem0, Qdrant local mode): the REST route and the MCP tool
delete exactly the subject's memories, in every state and app, and say how many; every route then
finds none of them; other subjects' memories are untouched, ids compared exactly."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .conftest import READ_ONLY_KEY, LiveServer
from .test_mcp import call

pytestmark = pytest.mark.slow

MEMORIES = "/api/v1/memories/"
ERASE = "/api/v1/memories/actions/erase"


def add(http: httpx.Client, text: str, **scope: Any) -> str:
    response = http.post(MEMORIES, json={"text": text, **scope})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def every_id(http: httpx.Client, user: str) -> set[str]:
    """The user's memories as every listing sees them: OpenMemory's (archived shown), mem0's server's
    and mem0's client's."""
    openmemory = http.post(f"{MEMORIES}filter", json={"user_id": user, "show_archived": True, "size": 100})
    mem0 = http.get("/memories", params={"user_id": user})
    platform = http.get("/v1/memories/", params={"user_id": user})
    for response in (openmemory, mem0, platform):
        assert response.status_code == 200, response.text
    listed = [
        {i["id"] for i in openmemory.json()["items"]},
        {i["id"] for i in mem0.json()["results"]},
        {i["id"] for i in platform.json()["results"]},
    ]
    assert listed[0] >= listed[1] == listed[2], "archived memories are listed by OpenMemory's filter only"
    return listed[0]


def test_the_route_erases_a_user_in_every_state_and_app(server: LiveServer, user: str) -> None:
    forgotten, kept = f"{user}-a", f"{user}-b"
    with server.client() as http:
        mine = {
            add(http, "I live in Lyon", user_id=forgotten, app="cursor"),
            add(http, "I am allergic to nuts", user_id=forgotten, agent_id="support-bot", app="claude"),
            add(http, "My sister is called Ines", user_id=forgotten, run_id="s-1"),
        }
        theirs = {add(http, "I live in Oslo", user_id=kept), add(http, "Lyon is lovely", user_id=kept)}
        archived = sorted(mine)[0]
        assert (
            http.post(
                f"{MEMORIES}actions/archive", json={"memory_ids": [archived], "user_id": forgotten}
            ).status_code
            == 200
        )
        paused = http.put("/api/v1/apps/cursor", params={"is_active": False, "user_id": forgotten})
        assert paused.status_code == 200, paused.text
        assert every_id(http, forgotten) == mine

        erased = http.post(ERASE, json={"user_id": forgotten})
        assert erased.status_code == 200, erased.text
        assert erased.json() == {"subject": "user_id", "deleted": 3, "related_deleted": 1, "remaining": 0}
        assert forgotten not in erased.text, "the id is not repeated"

        assert every_id(http, forgotten) == set()
        found = http.post("/search", json={"query": "Lyon", "user_id": forgotten}).json()["results"]
        assert found == []
        assert http.get(f"{MEMORIES}{archived}").status_code == 404
        assert every_id(http, kept) == theirs
        again = http.post(ERASE, json={"user_id": forgotten})
        assert again.json() == {"subject": "user_id", "deleted": 0, "related_deleted": 0, "remaining": 0}


def test_the_route_erases_an_agent_across_users(server: LiveServer, user: str) -> None:
    agent = f"{user}-bot"
    with server.client() as http:
        erased_ids = {
            add(http, "fact one", user_id=f"{user}-1", agent_id=agent),
            add(http, "fact two", user_id=f"{user}-2", agent_id=agent),
        }
        left = {
            add(http, "fact three", user_id=f"{user}-1"),
            add(http, "fact four", user_id=f"{user}-2", agent_id="other"),
        }
        result = http.post(ERASE, json={"agent_id": agent})
        assert result.json()["deleted"] == 2
        remaining = every_id(http, f"{user}-1") | every_id(http, f"{user}-2")
        assert remaining == left and not remaining & erased_ids


@pytest.mark.parametrize(
    ("body", "params", "status"),
    [
        ({}, {}, 422),
        ({"user_id": "a", "run_id": "r"}, {}, 422),
        ({"user_id": "*"}, {}, 422),
        ({"user_id": "a b"}, {}, 422),
        ({}, {"user_id": "a"}, 422),
    ],
)
def test_the_route_takes_exactly_one_id_in_its_body(
    server: LiveServer, body: dict[str, Any], params: dict[str, str], status: int
) -> None:
    with server.client() as http:
        assert http.post(ERASE, json=body, params=params).status_code == status


def test_the_read_only_key_cannot_erase(server: LiveServer, user: str) -> None:
    with server.client() as http:
        memory = add(http, "still here", user_id=user)
    with server.client(READ_ONLY_KEY) as http:
        assert http.post(ERASE, json={"user_id": user}).status_code == 403
    with server.client() as http:
        assert every_id(http, user) == {memory}


async def test_the_mcp_tool_erases_the_paths_user(server: LiveServer, user: str) -> None:
    alice, bob = f"{user}-alice", f"{user}-bob"
    with server.client() as http:
        add(http, "Alice's first fact", user_id=alice, app="cursor")
        add(http, "Alice's second fact", user_id=alice, agent_id="planner")
        kept = {add(http, "Bob's fact", user_id=bob)}
    refused = await call(server, alice, "erase_user_memories", {}, key=READ_ONLY_KEY)
    assert refused[0] == "error" and "read-only" in refused[1]
    result = json.loads(await call(server, alice, "erase_user_memories", {}))
    assert result == {"deleted": 2, "related_deleted": 0, "remaining": 0}
    assert json.loads(await call(server, alice, "list_memories", {})) == []
    with server.client() as http:
        assert every_id(http, alice) == set() and every_id(http, bob) == kept
