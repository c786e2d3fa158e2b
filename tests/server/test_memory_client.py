"""mem0's official `MemoryClient` (the installed `mem0ai` package), pointed at the server with `host=`,
works unchanged: add, search, get_all, get, update, delete, delete_all and history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from mem0 import MemoryClient
from mem0.exceptions import MemoryNotFoundError

from .conftest import API_KEY, READ_ONLY_KEY, LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def client(server: LiveServer) -> Iterator[MemoryClient]:
    """The real client object; its first call (`GET /v1/ping/`) checks the key."""
    memory_client = MemoryClient(api_key=API_KEY, host=server.url)
    yield memory_client
    memory_client.client.close()


def test_a_wrong_key_is_refused_at_construction(server: LiveServer) -> None:
    with pytest.raises(ValueError, match="Not authenticated"):
        MemoryClient(api_key="wrong", host=server.url)


def test_memory_client_round_trip(client: MemoryClient, user: str) -> None:
    alice = {"user_id": user}
    added = client.add("The payments API depends on Postgres 16", filters=alice, metadata={"team": "core"})
    assert [r["event"] for r in added["results"]] == ["ADD"]
    memory_id = added["results"][0]["id"]
    client.add([{"role": "user", "content": "Deploys happen on Thursdays"}], user_id=user)

    found = client.search("which database do payments use?", filters=alice, top_k=1)["results"]
    assert [r["id"] for r in found] == [memory_id] and found[0]["score"] > 0
    assert client.search("database", filters=alice, threshold=0.99)["results"] == []
    narrowed = client.search("payments database", filters={"AND": [alice, {"team": "core"}]}, threshold=0)
    narrowed = narrowed["results"]
    assert [r["id"] for r in narrowed] == [memory_id], "metadata filters beside the scope"

    listed = client.get_all(filters=alice)
    assert listed["count"] == 2 and {r["memory"] for r in listed["results"]} == {
        "The payments API depends on Postgres 16",
        "Deploys happen on Thursdays",
    }
    paged = client.get_all(filters=alice, page=1, page_size=1)
    assert paged["count"] == 2 and len(paged["results"]) == 1 and paged["next"] and paged["previous"] is None

    got = client.get(memory_id)
    assert got["memory"] == "The payments API depends on Postgres 16" and got["user_id"] == user
    assert got["metadata"] == {"team": "core"}

    expires = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    updated = client.update(memory_id, text="Payments run on Postgres 17", expiration_date=expires)
    assert updated["message"] == "Memory updated successfully!"
    assert client.get(memory_id)["expiration_date"] == expires
    client.update(memory_id, expiration_date=None)
    assert client.get(memory_id)["expiration_date"] is None, "null clears the expiration date"

    events = client.history(memory_id)
    assert [(e["event"], e["old_memory"], e["new_memory"]) for e in events] == [
        ("ADD", None, "The payments API depends on Postgres 16"),
        ("UPDATE", "The payments API depends on Postgres 16", "Payments run on Postgres 17"),
    ]

    assert client.delete(memory_id)["message"] == "Memory deleted successfully!"
    with pytest.raises(MemoryNotFoundError):
        client.get(memory_id)
    assert client.delete_all(user_id=user)["message"]
    assert client.get_all(filters=alice)["count"] == 0


def test_memory_client_stays_within_its_scope(client: MemoryClient, user: str) -> None:
    alice, bob = f"{user}-alice", f"{user}-bob"
    client.add("alice's locker code is 4471", filters={"user_id": alice})
    client.add("bob likes sailing", filters={"user_id": bob})
    found = client.search("locker code", filters={"user_id": bob})["results"]
    assert all("locker" not in r["memory"] for r in found)
    with pytest.raises(Exception, match="filters"):
        client.search("locker", filters={"OR": [{"user_id": bob}, {"user_id": alice}]})
    client.delete_all(user_id=bob)
    assert client.get_all(filters={"user_id": alice})["count"] == 1


def test_memory_client_with_the_read_only_key(server: LiveServer, user: str) -> None:
    reader = MemoryClient(api_key=READ_ONLY_KEY, host=server.url)
    assert reader.get_all(filters={"user_id": user})["count"] == 0
    with pytest.raises(Exception, match="read-only"):
        reader.add("not stored", filters={"user_id": user})
    reader.client.close()


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"Token {API_KEY}"}, {"X-API-Key": API_KEY}],
)
def test_every_upstream_key_scheme_is_read(server: LiveServer, user: str, headers: dict[str, str]) -> None:
    response = httpx.get(f"{server.url}/memories", params={"user_id": user}, headers=headers)
    assert response.status_code == 200, response.text
    both = {"Authorization": f"Bearer {API_KEY}", "X-API-Key": API_KEY}
    assert httpx.get(f"{server.url}/memories", params={"user_id": user}, headers=both).status_code == 401
