"""Erasing a subject from memories mem0 itself wrote (Qdrant's local mode): exactly the subject's points
go, from every collection of the store, and nothing else; a second erasure finds nothing; the job's
summary, output and logs never name the subject."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from expire.conftest import COLLECTION, DIMS, SEEDS, Dataset, open_mem0, point_ids
from memory_operator import cli, env
from memory_operator.api.erasure import ErasureSummary
from memory_operator.collection_names import apps_collection, entities_collection
from memory_operator.erase import core
from memory_operator.server.apps import AppRegistry, app_point_id
from memory_operator.synthetic import CANARY_USER_ID

pytestmark = pytest.mark.slow

ENTITIES = entities_collection(COLLECTION)
APPS = apps_collection(COLLECTION)


def keys_of(**wanted: str) -> set[str]:
    """The seeds whose scope field has this value (`user_id="alice"`)."""
    ((field, value),) = wanted.items()
    return {s.key for s in SEEDS if getattr(s, field) == value}


def erase(path: Path, key: str, value: str) -> core.Erased:
    client = QdrantClient(path=str(path))
    try:
        return core.erase_subject(client, COLLECTION, key, value)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [("user_id", "alice"), ("user_id", "bob"), ("agent_id", "support-bot"), ("run_id", "sess-incident")],
)
def test_exactly_the_subjects_memories_go(store: Dataset, key: str, value: str) -> None:
    before = point_ids(store.path)
    erased = erase(store.path, key, value)
    gone = before - point_ids(store.path)
    expected = keys_of(**{key: value})
    assert expected, "the dataset has memories of the subject"
    assert store.keys(gone) == expected
    assert point_ids(store.path) == {store.ids[k] for k in store.ids if k not in expected}
    assert (erased.memories, erased.remaining) == (len(expected), 0)
    assert erased.collections == [COLLECTION]


def test_a_second_erasure_deletes_nothing(store: Dataset) -> None:
    erase(store.path, "user_id", "bob")
    left = point_ids(store.path)
    again = erase(store.path, "user_id", "bob")
    assert (again.memories, again.related, again.remaining) == (0, 0, 0)
    assert point_ids(store.path) == left


def test_mem0_no_longer_finds_the_subject_and_still_finds_the_others(
    store: Dataset, embedding_model: Any
) -> None:
    erase(store.path, "user_id", "bob")
    with open_mem0(store.path, embedding_model) as memory:
        bob = memory.get_all(filters={"user_id": "bob"}, top_k=100, show_expired=True)["results"]
        found = memory.search("Bob likes dark mode", filters={"user_id": "bob"}, top_k=10)["results"]
        alice = memory.get_all(filters={"user_id": "alice"}, top_k=100, show_expired=True)["results"]
    assert bob == [] and found == []
    assert {m["id"] for m in alice} == {store.ids[k] for k in keys_of(user_id="alice")}


def entity(name: str, links: list[str], **scope: str) -> qm.PointStruct:
    payload = {"data": name, "entity_type": "PROPER", "linked_memory_ids": links, **scope}
    return qm.PointStruct(id=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), vector=[0.1] * DIMS, payload=payload)


def test_entities_and_app_states_of_the_subject_go_too(store: Dataset) -> None:
    """mem0's entity records (written when spaCy is installed) and the server's per-user app states."""
    bob_memory, alice_memory = store.ids["bob-ancient"], store.ids["incident-recent"]
    client = QdrantClient(path=str(store.path))
    try:
        client.create_collection(
            ENTITIES, vectors_config=qm.VectorParams(size=DIMS, distance=qm.Distance.COSINE)
        )
        client.upsert(
            ENTITIES,
            points=[
                entity("Bob", [bob_memory], user_id="bob"),
                entity("dark mode", [bob_memory, alice_memory], user_id="shared"),
                entity("Payments", [alice_memory], user_id="alice"),
            ],
        )
        apps = AppRegistry(client, APPS)
        apps.ensure(COLLECTION)
        for user in ("bob", "alice"):
            client.upsert(
                APPS,
                points=[
                    qm.PointStruct(
                        id=app_point_id(user, "cursor"),
                        vector={},
                        payload={"user_id": user, "app": "cursor", "is_active": False},
                    )
                ],
            )
    finally:
        client.close()

    erased = erase(store.path, "user_id", "bob")

    assert erased.collections == [COLLECTION, ENTITIES, APPS]
    # Bob's entity deleted, the shared one unlinked from his memory, the app state deleted.
    assert (erased.memories, erased.related) == (len(keys_of(user_id="bob")), 3)
    client = QdrantClient(path=str(store.path))
    try:
        left = {
            (r.payload or {})["data"]: (r.payload or {})["linked_memory_ids"]
            for r in client.scroll(ENTITIES, limit=10)[0]
        }
        states = {(r.payload or {})["user_id"] for r in client.scroll(APPS, limit=10)[0]}
    finally:
        client.close()
    assert left == {"dark mode": [alice_memory], "Payments": [alice_memory]}
    assert states == {"alice"}


def test_the_canarys_memories_are_left_unless_they_are_the_subject(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        client.create_collection(
            COLLECTION, vectors_config=qm.VectorParams(size=4, distance=qm.Distance.COSINE)
        )
        client.upsert(
            COLLECTION,
            points=[
                qm.PointStruct(
                    id=1, vector=[1, 0, 0, 0], payload={"user_id": CANARY_USER_ID, "agent_id": "a"}
                ),
                qm.PointStruct(id=2, vector=[0, 1, 0, 0], payload={"user_id": "u", "agent_id": "a"}),
            ],
        )
        assert core.erase_subject(client, COLLECTION, "agent_id", "a").memories == 1
        assert core.erase_subject(client, COLLECTION, "user_id", CANARY_USER_ID).memories == 1
        assert client.count(COLLECTION).count == 0
    finally:
        client.close()


# --- the job --------------------------------------------------------------------------------------


def erasures_file(tmp_path: Path, subject: dict[str, str], name: str = "ticket-4711") -> Path:
    path = tmp_path / "erasures.json"
    path.write_text(json.dumps({"erase": [{"name": name, "subject": subject}], "reapply": []}))
    return path


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in vars(env).values():
        if isinstance(name, str) and name.startswith("MEMORY_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env.STORE_NAME, "mem")
    monkeypatch.setenv(env.COLLECTION, COLLECTION)
    return monkeypatch


def run_job(tmp_path: Path, *args: str) -> tuple[int, ErasureSummary, str]:
    log = tmp_path / "termination-log"
    code = cli.main(["erase", *args, "--termination-log", str(log)])
    text = log.read_text()
    return code, ErasureSummary.model_validate_json(text), text


def test_the_job_erases_reports_and_never_names_the_subject(
    store: Dataset, tmp_path: Path, job_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = erasures_file(tmp_path, {"userId": "bob"})
    args = ["--erasure", "ticket-4711", "--erasures-file", str(file), "--qdrant-path", str(store.path)]
    code, summary, message = run_job(tmp_path, *args)
    assert code == 0, message
    bob = keys_of(user_id="bob")
    assert (summary.phase, summary.deleted, summary.remaining, summary.subject_kind) == (
        "Completed",
        len(bob),
        0,
        "userId",
    )
    assert store.keys(set(store.ids.values()) - point_ids(store.path)) == bob
    code, again, _ = run_job(tmp_path, *args)
    assert (code, again.phase, again.deleted, again.remaining) == (0, "Completed", 0, 0)
    out = capsys.readouterr()
    for text in (message, out.out, out.err):
        assert "bob" not in text, "the subject's id is personal data"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_store_that_is_down_fails_the_run_as_unavailable(
    tmp_path: Path, job_env: pytest.MonkeyPatch
) -> None:
    job_env.setenv(env.QDRANT_URL, f"http://127.0.0.1:{closed_port()}")
    file = erasures_file(tmp_path, {"userId": "bob"})
    code, summary, _ = run_job(
        tmp_path, "--erasure", "ticket-4711", "--erasures-file", str(file), "--wait-timeout", "1"
    )
    assert (code, summary.phase, summary.reason) == (1, "Failed", "StoreUnavailable")
    assert summary.subject_kind == "userId" and "did not become ready" in (summary.error or "")


def test_an_erasure_missing_from_the_file_or_an_openmemory_store_is_refused(
    tmp_path: Path, job_env: pytest.MonkeyPatch
) -> None:
    file = erasures_file(tmp_path, {"userId": "bob"})
    code, summary, _ = run_job(
        tmp_path, "--erasure", "other", "--erasures-file", str(file), "--qdrant-path", str(tmp_path)
    )
    assert (code, summary.reason) == (1, "InvalidSettings")
    job_env.setenv(env.SERVER_FLAVOR, "openmemory")
    code, summary, _ = run_job(
        tmp_path, "--erasure", "ticket-4711", "--erasures-file", str(file), "--qdrant-path", str(tmp_path)
    )
    assert (code, summary.reason) == (1, "FlavorNotSupported")


def test_an_invalid_file_is_refused_without_quoting_it(tmp_path: Path, job_env: pytest.MonkeyPatch) -> None:
    file = erasures_file(tmp_path, {"userId": "bob smith"})
    code, summary, message = run_job(
        tmp_path, "--erasure", "ticket-4711", "--erasures-file", str(file), "--qdrant-path", str(tmp_path)
    )
    assert (code, summary.reason) == (1, "InvalidSettings")
    assert "bob" not in message
