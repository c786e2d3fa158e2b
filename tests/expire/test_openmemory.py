"""The openmemory flavor: matched memories are deleted through OpenMemory's REST API.

The fake below is OpenMemory's `DELETE /api/v1/memories/` on an httpx MockTransport: it knows the
users and memory rows of its SQL database, answers 404 for an unknown user or memory (failing the
whole request, as OpenMemory does), and marks rows deleted without touching Qdrant (as older
OpenMemory versions do), so the job must remove the vectors itself.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient

from memory_operator.api.jobs import ExpirationSummary
from memory_operator.api.policy import MemoryPolicySpec
from memory_operator.expire import purge
from memory_operator.expire.openmemory import OpenMemoryDeleter, ServerError

from .conftest import COLLECTION, SEEDS, Dataset, point_ids
from .test_purge import STANDARD, STANDARD_DELETES

pytestmark = pytest.mark.slow


class FakeOpenMemory:
    def __init__(self, rows: dict[str, str], fail_with: int | None = None) -> None:
        self.rows = {memory_id: {"user": user, "state": "active"} for memory_id, user in rows.items()}
        self.users = set(rows.values())
        self.requests: list[dict[str, Any]] = []
        self.fail_with = fail_with

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "DELETE" or request.url.path != "/api/v1/memories/":
            return httpx.Response(405)
        body = json.loads(request.content)
        self.requests.append(body)
        if self.fail_with:
            return httpx.Response(self.fail_with, json={"detail": "database is locked"})
        if body["user_id"] not in self.users:
            return httpx.Response(404, json={"detail": "User not found"})
        if any(self.rows.get(i, {}).get("user") != body["user_id"] for i in body["memory_ids"]):
            return httpx.Response(404, json={"detail": "Memory not found"})
        for memory_id in body["memory_ids"]:
            self.rows[memory_id]["state"] = "deleted"
        return httpx.Response(
            200, json={"message": f"Successfully deleted {len(body['memory_ids'])} memories"}
        )


def expire_through(path: Path, fake: FakeOpenMemory, batch_size: int = 100) -> ExpirationSummary:
    client = QdrantClient(path=str(path))
    http = httpx.Client(transport=httpx.MockTransport(fake.handle), base_url="http://openmemory:8765")
    try:
        return purge.expire_store(
            client,
            COLLECTION,
            MemoryPolicySpec.model_validate(STANDARD),
            ExpirationSummary(store="om", collection=COLLECTION),
            now=dt.datetime.now(dt.UTC),
            deleter=OpenMemoryDeleter(client, COLLECTION, http, batch_size=batch_size),
            create_indexes=False,
        )
    finally:
        http.close()
        client.close()


def alice_rows(store: Dataset, without: frozenset[str] = frozenset()) -> dict[str, str]:
    return {store.ids[s.key]: s.user_id for s in SEEDS if s.user_id == "alice" and s.key not in without}


def test_deletes_go_through_the_api_per_user_and_the_vectors_go_too(store: Dataset) -> None:
    # temporary-old has no row in OpenMemory's database, and bob is unknown to it altogether.
    fake = FakeOpenMemory(alice_rows(store, without=frozenset({"temporary-old"})))
    before = point_ids(store.path)
    summary = expire_through(store.path, fake, batch_size=2)
    gone = store.keys(before - point_ids(store.path))
    assert gone == set().union(*STANDARD_DELETES.values())
    assert summary.deleted == summary.matched == len(gone)
    deleted_rows = {i for i, row in fake.rows.items() if row["state"] == "deleted"}
    assert store.keys(deleted_rows) == {"incident-old", "incident-old-in-session", "session-old"}
    owner = {store.ids[s.key]: s.user_id for s in SEEDS}
    for body in fake.requests:
        assert 1 <= len(body["memory_ids"]) <= 2
        assert {owner[i] for i in body["memory_ids"]} == {body["user_id"]}
    users = {body["user_id"] for body in fake.requests}
    assert users == {"alice", "bob"}


def test_rerun_sends_nothing(store: Dataset) -> None:
    expire_through(store.path, FakeOpenMemory(alice_rows(store)))
    fake = FakeOpenMemory(alice_rows(store))
    summary = expire_through(store.path, fake)
    assert fake.requests == [] and summary.matched == 0


def test_a_refusing_server_fails_the_run_and_keeps_the_memories(store: Dataset) -> None:
    before = point_ids(store.path)
    with pytest.raises(ServerError, match="HTTP 500"):
        expire_through(store.path, FakeOpenMemory(alice_rows(store), fail_with=500))
    assert point_ids(store.path) == before
