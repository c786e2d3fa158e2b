"""The canary's reserved scope: its synthetic memories never show in anyone else's listings, exports or
bulk changes, while the canary itself lists and deletes them."""

from __future__ import annotations

import json

from memory_operator.synthetic import CANARY_USER_ID

from .conftest import LiveServer


def add(server: LiveServer, text: str, **scope: str) -> str:
    with server.client() as client:
        answer = client.post("/memories", json={"messages": text, "infer": False, **scope})
        assert answer.status_code == 200, answer.text
        (memory,) = answer.json()["results"]
        return str(memory["id"])


def listed_ids(server: LiveServer, **params: str) -> set[str]:
    with server.client() as client:
        answer = client.get("/memories", params=params)
        assert answer.status_code == 200, answer.text
        return {m["id"] for m in answer.json()["results"]}


def test_synthetic_memories_stay_out_of_other_listings(server: LiveServer, user: str) -> None:
    run = f"canary-{user[-20:]}"
    synthetic = add(server, "A synthetic fact of the canary", user_id=CANARY_USER_ID, run_id=run)
    mine = add(server, "A fact of a real user", user_id=user, run_id=run)
    try:
        # An admin key lists every memory it reaches without a scope: never the canary's.
        everything = listed_ids(server)
        assert mine in everything and synthetic not in everything
        # Another scope that shares the run id does not reach them either.
        assert listed_ids(server, run_id=run) == {mine}
        # The canary lists its own.
        assert listed_ids(server, user_id=CANARY_USER_ID, run_id=run) == {synthetic}
        with server.client() as client:
            exported = client.post(
                "/api/v1/backup/export", json={}, headers={"Accept": "application/x-ndjson"}
            )
            assert exported.status_code == 200
            ids = {json.loads(line)["id"] for line in exported.text.splitlines() if line.strip()}
            assert mine in ids and synthetic not in ids
            # A bulk delete of the run, by another scope, leaves the canary's memory alone.
            assert client.delete("/memories", params={"run_id": run}).status_code == 200
        assert listed_ids(server, user_id=CANARY_USER_ID, run_id=run) == {synthetic}
    finally:
        with server.client() as client:
            client.delete("/memories", params={"user_id": CANARY_USER_ID, "run_id": run})
    assert listed_ids(server, user_id=CANARY_USER_ID, run_id=run) == set()
