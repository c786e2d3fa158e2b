"""Retention rules applied to memories that mem0 itself wrote into Qdrant (local mode)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.api.jobs import ExpirationSummary
from memory_operator.api.policy import MemoryPolicySpec
from memory_operator.collection_names import entities_collection
from memory_operator.expire import purge
from memory_operator.expire.rules import EXPIRATION_DATE_RULE

from .conftest import COLLECTION, DIMS, Dataset, open_mem0, point_ids

pytestmark = pytest.mark.slow

# The retention a team asks for: incidents 90 days, temporary issues 7 days, session memories
# 7 days, service dependencies never, and whatever mem0 marked expired.
STANDARD = {
    "rules": [
        {"name": "dependencies", "match": {"metadata": {"type": "service-dependency"}}, "keep": True},
        {"name": "incidents", "match": {"metadata": {"type": "incident"}}, "maxAge": "90d"},
        {"name": "temporary", "match": {"categories": ["temporary"]}, "maxAge": "7d"},
        {"name": "sessions", "match": {"runId": "*"}, "maxAge": "7d"},
    ],
    "honorExpirationDate": True,
}
STANDARD_DELETES = {
    "incidents": {"incident-old", "incident-old-in-session"},
    "temporary": {"temporary-old"},
    "sessions": {"session-old"},
    EXPIRATION_DATE_RULE: {"expired"},
}


def expire(path: Path, policy: dict[str, Any], dry_run: bool = False, **options: Any) -> ExpirationSummary:
    client = QdrantClient(path=str(path))
    try:
        summary = ExpirationSummary(store="demo", collection=COLLECTION, dry_run=dry_run)
        return purge.expire_store(
            client,
            COLLECTION,
            MemoryPolicySpec.model_validate(policy),
            summary,
            now=dt.datetime.now(dt.UTC),
            create_indexes=False,
            **options,
        )
    finally:
        client.close()


def deleted_keys(store: Dataset, policy: dict[str, Any]) -> set[str]:
    before = point_ids(store.path)
    expire(store.path, policy)
    gone = before - point_ids(store.path)
    return store.keys(gone)


def listed(summary: ExpirationSummary) -> dict[str, set[str]]:
    return {rule.name: set(rule.ids) for rule in summary.rules}


def test_mem0_wrote_the_layout_the_rules_rely_on(dataset: Dataset) -> None:
    client = QdrantClient(path=str(dataset.path))
    try:
        (record,) = client.retrieve(COLLECTION, ids=[dataset.ids["temporary-new"]], with_payload=True)
        payload = record.payload or {}
        assert payload["user_id"] == "alice" and payload["categories"] == ["temporary", "network"]
        assert dt.datetime.fromisoformat(payload["created_at"]).utcoffset() == dt.timedelta(0)
        (record,) = client.retrieve(COLLECTION, ids=[dataset.ids["expired"]], with_payload=True)
        assert dt.date.fromisoformat((record.payload or {})["expiration_date"]) < dataset.now.date()
        # Without entity extraction installed mem0 writes no companion collection of entities.
        names = {c.name for c in client.get_collections().collections}
        assert COLLECTION in names and "mem0migrations" not in names
    finally:
        client.close()


def test_dry_run_lists_exactly_what_each_rule_would_delete(dataset: Dataset) -> None:
    before = point_ids(dataset.path)
    summary = expire(dataset.path, STANDARD, dry_run=True, list_limit=100)
    assert point_ids(dataset.path) == before, "a dry run deletes nothing"
    assert {name: dataset.keys(ids) for name, ids in listed(summary).items()} == STANDARD_DELETES
    assert [(r.name, r.matched, r.deleted) for r in summary.rules] == [
        (name, len(keys), 0) for name, keys in STANDARD_DELETES.items()
    ]
    assert summary.matched == 5 and summary.deleted == 0


def test_dry_run_lists_ids_up_to_the_bound(dataset: Dataset) -> None:
    summary = expire(dataset.path, {"rules": [{"name": "all", "maxAge": "1h"}]}, dry_run=True, list_limit=3)
    (rule, _) = summary.rules
    assert rule.matched == len(dataset.ids) - 0 and len(rule.ids) == 3


def test_purge_deletes_exactly_what_the_rules_say_and_reports_as_the_dry_run(store: Dataset) -> None:
    dry = expire(store.path, STANDARD, dry_run=True)
    before = point_ids(store.path)
    summary = expire(store.path, STANDARD)
    gone = before - point_ids(store.path)
    assert store.keys(gone) == set().union(*STANDARD_DELETES.values())
    assert [(r.name, r.matched, r.deleted) for r in summary.rules] == [
        (name, len(keys), len(keys)) for name, keys in STANDARD_DELETES.items()
    ]
    assert [(r.name, r.matched) for r in dry.rules] == [(r.name, r.matched) for r in summary.rules]
    assert summary.deleted == summary.matched == len(gone) and summary.error is None


def test_rerun_deletes_nothing_more(store: Dataset) -> None:
    expire(store.path, STANDARD)
    left = point_ids(store.path)
    again = expire(store.path, STANDARD)
    assert point_ids(store.path) == left
    assert again.matched == 0 and again.deleted == 0


def test_mem0_no_longer_returns_purged_memories(store: Dataset, embedding_model: Any) -> None:
    query = "the checkout service went down after a bad deploy"

    def searched() -> set[str]:
        with open_mem0(store.path, embedding_model) as memory:
            found = memory.search(query, filters={"user_id": "alice"}, top_k=20)["results"]
            return {m["id"] for m in found}

    assert store.ids["incident-old"] in searched()
    expire(store.path, STANDARD)
    purged = {store.ids[k] for keys in STANDARD_DELETES.values() for k in keys}
    with open_mem0(store.path, embedding_model) as memory:
        for user in ("alice", "bob"):
            results = memory.get_all(filters={"user_id": user}, top_k=100, show_expired=True)["results"]
            listed_ids = {m["id"] for m in results}
            assert listed_ids and not listed_ids & purged
    after = searched()
    assert after and store.ids["incident-old"] not in after


def test_keep_rules_win_over_every_other_rule(store: Dataset) -> None:
    policy = {
        "rules": [
            {"name": "everything-old", "maxAge": "1h"},
            {"name": "alice", "match": {"userId": "alice"}, "keep": True},
        ],
        "honorExpirationDate": True,
    }
    assert deleted_keys(store, policy) == {
        "bob-ancient",
        "bob-agent-old",
        "expired",
        "expires-today",
        "expires-later",
    }


def test_a_keep_rule_that_matches_everything_protects_everything(store: Dataset) -> None:
    policy = {"rules": [{"name": "all", "keep": True}, {"name": "old", "maxAge": "1h"}]}
    assert deleted_keys(store, policy) == set()


def test_age_from_created_at(store: Dataset) -> None:
    policy = {
        "rules": [
            {
                "name": "incidents",
                "match": {"metadata": {"type": "incident"}},
                "maxAge": "90d",
                "ageField": "created_at",
            }
        ],
        "honorExpirationDate": False,
    }
    # Updated ten days ago but created 200 days ago: only the created_at clock expires it.
    assert deleted_keys(store, policy) == {"incident-old", "incident-old-in-session", "incident-touched"}


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"userId": "bob"}, {"bob-ancient", "bob-agent-old"}),
        ({"agentId": "builder"}, {"bob-agent-old"}),
        ({"agentId": "*"}, {"bob-agent-old"}),
        ({"runId": "sess-incident"}, {"incident-old-in-session"}),
        ({"userId": "alice", "metadata": {"type": "incident"}}, {"incident-old", "incident-old-in-session"}),
        ({"categories": ["network", "nothing"]}, set()),
    ],
)
def test_scope_and_metadata_matches(dataset: Dataset, match: dict[str, Any], expected: set[str]) -> None:
    policy = {"rules": [{"name": "r", "match": match, "maxAge": "30d"}], "honorExpirationDate": False}
    (rule,) = expire(dataset.path, policy, dry_run=True, list_limit=100).rules
    assert dataset.keys(set(rule.ids)) == expected and rule.matched == len(expected)


def test_expiration_dates_purge_only_passed_dates(store: Dataset) -> None:
    assert deleted_keys(store, {"honorExpirationDate": True}) == {"expired", "dependency-expired"}


def test_expiration_dates_left_alone_when_not_honored(store: Dataset) -> None:
    assert deleted_keys(store, {"honorExpirationDate": False}) == set()


def test_missing_collection_is_nothing_to_do(tmp_path: Path) -> None:
    summary = expire(tmp_path / "empty", STANDARD)
    assert summary.error is None and summary.matched == 0
    assert [r.name for r in summary.rules] == [*STANDARD_DELETES]


def test_entities_of_purged_memories_are_unlinked(store: Dataset) -> None:
    """mem0's entity records (written when spaCy is installed) must not outlive their memories."""
    entities = entities_collection(COLLECTION)
    purged, kept = store.ids["incident-old"], store.ids["incident-recent"]
    records = {
        "only-purged": [purged],
        "both": [purged, kept],
        "only-kept": [kept],
    }
    ids = {name: str(uuid.uuid5(uuid.NAMESPACE_DNS, name)) for name in records}
    client = QdrantClient(path=str(store.path))
    try:
        client.create_collection(
            entities, vectors_config=qm.VectorParams(size=DIMS, distance=qm.Distance.COSINE)
        )
        client.upsert(
            entities,
            points=[
                qm.PointStruct(
                    id=ids[name],
                    vector=[0.1] * DIMS,
                    payload={
                        "data": name,
                        "entity_type": "PROPER",
                        "linked_memory_ids": links,
                        "user_id": "alice",
                    },
                )
                for name, links in records.items()
            ],
        )
    finally:
        client.close()
    summary = expire(store.path, STANDARD)
    assert summary.entities_pruned == 2
    client = QdrantClient(path=str(store.path))
    try:
        left = {
            str(r.id): (r.payload or {})["linked_memory_ids"] for r in client.scroll(entities, limit=10)[0]
        }
    finally:
        client.close()
    assert left == {ids["both"]: [kept], ids["only-kept"]: [kept]}
