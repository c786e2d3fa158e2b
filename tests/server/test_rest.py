"""The REST APIs end to end: real mem0, Qdrant local mode and the local embedding model."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from .conftest import READ_ONLY_KEY, LiveServer

pytestmark = pytest.mark.slow
MEMORIES = "/api/v1/memories/"


def add(server: LiveServer, user: str, text: str, **fields: Any) -> dict[str, Any]:
    with server.client() as client:
        response = client.post(MEMORIES, json={"user_id": user, "text": text, **fields})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_openmemory_round_trip(server: LiveServer, user: str) -> None:
    created = add(
        server, user, "The payments API depends on Postgres 16", metadata={"team": "core"}, app="cursor"
    )
    assert created["content"] == "The payments API depends on Postgres 16"
    assert created["state"] == "active" and created["app_name"] == "cursor"
    assert created["metadata_"] == {"team": "core"}
    memory_id = created["id"]
    with server.client() as client:
        got = client.get(f"{MEMORIES}{memory_id}", params={"user_id": user}).json()
        assert got["content"] == created["content"]

        updated = client.put(
            f"{MEMORIES}{memory_id}", json={"user_id": user, "memory_content": "Payments run on Postgres 17"}
        )
        assert updated.status_code == 200 and updated.json()["content"] == "Payments run on Postgres 17"

        listed = client.get(MEMORIES, params={"user_id": user}).json()
        assert listed["total"] == 1 and listed["pages"] == 1 and listed["page"] == 1
        assert [i["content"] for i in listed["items"]] == ["Payments run on Postgres 17"]

        deleted = client.request("DELETE", MEMORIES, json={"memory_ids": [memory_id], "user_id": user})
        assert deleted.status_code == 200
        assert client.get(f"{MEMORIES}{memory_id}", params={"user_id": user}).status_code == 404
        assert client.get(MEMORIES, params={"user_id": user}).json()["total"] == 0


def test_pagination_and_filters(server: LiveServer, user: str) -> None:
    for n in range(5):
        add(
            server, user, f"note number {n}", app="a" if n % 2 else "b", categories=["notes"] if n < 2 else []
        )
    with server.client() as client:
        page = client.get(MEMORIES, params={"user_id": user, "page": 2, "size": 2}).json()
        assert (page["total"], page["pages"], page["size"], len(page["items"])) == (5, 3, 2, 2)
        assert client.get(MEMORIES, params={"user_id": user, "app_id": "a"}).json()["total"] == 2
        assert client.get(MEMORIES, params={"user_id": user, "categories": "notes"}).json()["total"] == 2
        found = client.get(MEMORIES, params={"user_id": user, "search_query": "NUMBER 3"}).json()
        assert [i["content"] for i in found["items"]] == ["note number 3"]

        filtered = client.post(
            f"{MEMORIES}filter",
            json={"user_id": user, "app_ids": ["b"], "sort_column": "memory", "sort_direction": "asc"},
        ).json()
        assert [i["content"] for i in filtered["items"]] == [
            "note number 0",
            "note number 2",
            "note number 4",
        ]

        categories = client.get(f"{MEMORIES}categories", params={"user_id": user}).json()
        counts = {c["name"]: c["count"] for c in categories["categories"]}
        assert counts["notes"] == 2 and counts["incident"] == 0 and "runbook" in counts

        stats = client.get("/api/v1/stats", params={"user_id": user}).json()
        assert stats["total_memories"] == 5 and stats["total_apps"] == 2


def test_archive_and_pause_change_state_in_qdrant(server: LiveServer, user: str) -> None:
    first = add(server, user, "my cat is called Miso")["id"]
    second = add(server, user, "my dog is called Pixel")["id"]
    with server.client() as client:
        archived = client.post(f"{MEMORIES}actions/archive", json={"memory_ids": [first], "user_id": user})
        assert archived.status_code == 200
        paused = client.post(f"{MEMORIES}actions/pause", json={"memory_ids": [second], "user_id": user})
        assert paused.status_code == 200

        listed = {i["id"]: i["state"] for i in client.get(MEMORIES, params={"user_id": user}).json()["items"]}
        assert listed == {second: "paused"}, "archived memories are not listed by default"
        shown = client.post(f"{MEMORIES}filter", json={"user_id": user, "show_archived": True}).json()
        assert {i["id"] for i in shown["items"]} == {first, second}

        search = client.post("/search", json={"query": "pets", "user_id": user}).json()
        assert search["results"] == [], "only active memories are searched"

        resumed = client.post(
            f"{MEMORIES}actions/pause", json={"user_id": user, "global_pause": True, "state": "active"}
        )
        assert resumed.status_code == 200
    payload = server.slot.get().client.retrieve("memories", [first])[0].payload
    assert payload is not None and payload["state"] == "active"


def test_mem0_shape_search_with_metadata_filters(server: LiveServer, user: str) -> None:
    with server.client() as client:
        for text, kind in [
            ("checkout calls the fraud service", "dependency"),
            ("fraud service outage on Monday", "incident"),
        ]:
            response = client.post(
                "/memories", json={"messages": text, "user_id": user, "metadata": {"type": kind}}
            )
            assert response.status_code == 200, response.text
        everything = client.post("/search", json={"query": "fraud service", "user_id": user}).json()[
            "results"
        ]
        assert len(everything) == 2
        incidents = client.post(
            "/search", json={"query": "fraud service", "user_id": user, "filters": {"type": "incident"}}
        ).json()["results"]
        assert [r["memory"] for r in incidents] == ["fraud service outage on Monday"]
        assert incidents[0]["metadata"] == {"type": "incident"} and incidents[0]["score"] > 0

        memory_id = incidents[0]["id"]
        assert (
            client.get(f"/memories/{memory_id}", params={"user_id": user})
            .json()["memory"]
            .startswith("fraud")
        )
        assert client.delete(f"/memories/{memory_id}", params={"user_id": user}).status_code == 200
        assert len(client.get("/memories", params={"user_id": user}).json()["results"]) == 1


def test_expiration_defaults_from_categories(server: LiveServer, user: str) -> None:
    today = dt.datetime.now(dt.UTC).date()
    incident = add(server, user, "db failover at night", categories=["incident"])
    temporary = add(server, user, "deploy freeze", metadata={"categories": ["temporary"]})
    kept = add(server, user, "restart order", categories=["incident", "runbook"])
    explicit = add(server, user, "rotate certs", expiration_date="2030-01-31")
    assert incident["expiration_date"] == (today + dt.timedelta(days=90)).isoformat()
    assert temporary["expiration_date"] == (today + dt.timedelta(days=3)).isoformat(), "config overrides 7d"
    assert kept["expiration_date"] is None, "a category that never expires wins"
    assert explicit["expiration_date"] == "2030-01-31"
    payload = server.slot.get().client.retrieve("memories", [incident["id"]])[0].payload
    assert payload is not None and payload["categories"] == ["incident"] and payload["expiration_date"]


def test_expired_memories_are_hidden(server: LiveServer, user: str) -> None:
    add(server, user, "an old fact about queues", expiration_date="2001-01-01")
    add(server, user, "a current fact about queues")
    with server.client() as client:
        listed = client.get(MEMORIES, params={"user_id": user}).json()
        assert [i["content"] for i in listed["items"]] == ["a current fact about queues"]
        found = client.post("/search", json={"query": "queues", "user_id": user}).json()["results"]
        assert [r["memory"] for r in found] == ["a current fact about queues"]


def test_users_are_isolated(server: LiveServer, user: str) -> None:
    alice, bob = f"{user}-alice", f"{user}-bob"
    secret = add(server, alice, "alice's locker code is 4471")["id"]
    add(server, bob, "bob likes sailing")
    with server.client() as client:
        assert client.get(MEMORIES, params={"user_id": bob}).json()["total"] == 1
        found = client.post("/search", json={"query": "locker code", "user_id": bob}).json()["results"]
        assert all("locker" not in r["memory"] for r in found)
        assert client.get(f"{MEMORIES}{secret}", params={"user_id": bob}).status_code == 404
        stolen = client.request("DELETE", MEMORIES, json={"memory_ids": [secret], "user_id": bob})
        assert stolen.status_code == 404
        archived = client.post(f"{MEMORIES}actions/archive", json={"memory_ids": [secret], "user_id": bob})
        assert archived.status_code == 404
        widened = client.post(
            "/search", json={"query": "locker", "user_id": bob, "filters": {"OR": [{"user_id": alice}]}}
        )
        assert widened.status_code == 422, "scope ids are request fields, never filters"
        assert widened.json()["detail"][0]["loc"] == ["body", "filters"]
        assert client.get(f"{MEMORIES}{secret}", params={"user_id": alice}).status_code == 200


def test_auth(server: LiveServer, user: str) -> None:
    with server.client(key=None) as anonymous:
        response = anonymous.get(MEMORIES, params={"user_id": user})
        assert response.status_code == 401 and response.json() == {"detail": "Not authenticated"}
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/metrics").status_code == 401
    with server.client(key="wrong") as wrong:
        assert wrong.post(MEMORIES, json={"user_id": user, "text": "x"}).status_code == 401
    with server.client(key=READ_ONLY_KEY) as read_only:
        assert read_only.get(MEMORIES, params={"user_id": user}).status_code == 200
        assert read_only.post("/search", json={"query": "x", "user_id": user}).status_code == 200
        denied = read_only.post(MEMORIES, json={"user_id": user, "text": "x"})
        assert denied.status_code == 403
        assert (
            read_only.request("DELETE", MEMORIES, json={"memory_ids": [], "user_id": user}).status_code == 403
        )
    with server.client() as client:
        assert client.get(MEMORIES, params={"user_id": user}).json()["total"] == 0, "nothing was written"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (MEMORIES, {"text": "no user"}, "user_id"),
        (MEMORIES, {"user_id": "u", "text": ""}, "text"),
        (MEMORIES, {"user_id": "has space", "text": "x"}, "user_id"),
        (MEMORIES, {"user_id": "u", "text": "x", "expiration_date": "tomorrow"}, "expiration_date"),
        ("/search", {"query": "x", "user_id": "u", "top_k": 0}, "top_k"),
        (f"{MEMORIES}actions/archive", {"memory_ids": ["not-a-uuid"], "user_id": "u"}, "memory_ids"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    server: LiveServer, path: str, body: dict[str, Any], field: str
) -> None:
    with server.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"]), response.text


def test_scope_and_filters_errors_are_422(server: LiveServer, user: str) -> None:
    with server.client() as client:
        no_scope = client.post("/search", json={"query": "x"})
        assert no_scope.status_code == 422 and "user_id" in no_scope.text
        bad_operator = client.post(
            "/search", json={"query": "x", "user_id": user, "filters": {"n": {"near": 1}}}
        )
        assert bad_operator.status_code == 422 and "near" in bad_operator.text


def test_oversize_body_is_413(server: LiveServer, user: str) -> None:
    with server.client() as client:
        response = client.post(MEMORIES, json={"user_id": user, "text": "x" * 70_000})
        assert response.status_code == 413
        assert client.get(MEMORIES, params={"user_id": user}).json()["total"] == 0


def test_parallel_adds_and_searches_lose_nothing(server: LiveServer, user: str) -> None:
    def add_one(n: int) -> int:
        with server.client() as client:
            return client.post(MEMORIES, json={"user_id": user, "text": f"parallel fact {n}"}).status_code

    def search_one(_: int) -> int:
        with server.client() as client:
            return client.post("/search", json={"query": "parallel fact", "user_id": user}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        adds = pool.map(add_one, range(24))
        searches = pool.map(search_one, range(8))
        statuses = [*adds, *searches]
    assert set(statuses) == {200}
    with server.client() as client:
        listed = client.get(MEMORIES, params={"user_id": user, "size": 100}).json()
    assert sorted(i["content"] for i in listed["items"]) == sorted(f"parallel fact {n}" for n in range(24))


def test_metrics_use_route_templates(server: LiveServer, user: str) -> None:
    memory_id = add(server, user, "metrics sample")["id"]
    with server.client() as client:
        client.get(f"{MEMORIES}{memory_id}", params={"user_id": user})
        text = client.get("/metrics").text
    assert 'route="/api/v1/memories/{memory_id}"' in text
    assert memory_id not in text
    assert 'memory_server_memory_operations_total{kind="add"}' in text
    assert "memory_server_request_duration_seconds_bucket" in text
    assert "memory_server_qdrant_errors_total" in text


def test_openapi_document_is_served(server: LiveServer) -> None:
    with server.client(key=None) as client:
        document = client.get("/openapi.json").json()
    assert {"/api/v1/memories/", "/api/v1/memories/filter", "/search", "/memories"} <= set(document["paths"])
