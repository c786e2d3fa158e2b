"""The audit on memories that mem0 itself wrote into Qdrant (local mode): exact duplicates by mem0's
content hash per scope, near duplicates found by Qdrant's own searches, stale memories by age, the
dedupe of exact duplicates, and the canary's reserved scope left alone by audits and retention."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from memory_operator.api.jobs import AuditSummary, ExpirationSummary
from memory_operator.api.policy import AuditSpec, MemoryPolicySpec
from memory_operator.expire import audit, purge
from memory_operator.synthetic import CANARY_USER_ID

from .conftest import COLLECTION, open_mem0, point_ids

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Note:
    key: str
    text: str
    user_id: str | None = "alice"
    agent_id: str | None = None
    run_id: str | None = None
    age_days: float = 1


NOTES = [
    # The same text three times for alice: the oldest is the original, two duplicates.
    Note("editor-1", "Alice prefers dark mode in her editor", age_days=30),
    Note("editor-2", "Alice prefers dark mode in her editor", age_days=20),
    Note("editor-3", "Alice prefers dark mode in her editor", age_days=10),
    # Reworded slightly: near duplicates of that text (cosine 0.98 and 1.0 with all-MiniLM-L6-v2).
    Note("editor-dot", "Alice prefers dark mode in her editor.", age_days=5),
    Note("editor-lower", "alice prefers dark mode in her editor", age_days=4),
    # A free paraphrase (cosine 0.91): below the default threshold.
    Note("editor-paraphrase", "Alice likes her editor in dark mode", age_days=3),
    # The same text in other scopes: never a duplicate of alice's.
    Note("editor-bob", "Alice prefers dark mode in her editor", user_id="bob", age_days=40),
    Note("editor-alice-agent", "Alice prefers dark mode in her editor", agent_id="helper", age_days=40),
    Note("editor-alice-run", "Alice prefers dark mode in her editor", run_id="session-1", age_days=40),
    # An agent-only scope with its own duplicate and near duplicate.
    Note("deploy-1", "The checkout service went down after a bad deploy", None, "ops", age_days=200),
    Note("deploy-2", "The checkout service went down after a bad deploy", None, "ops", age_days=150),
    Note("deploy-near", "The checkout service went down after a bad deployment", None, "ops", age_days=100),
    Note("latency", "Payments latency spiked during the sale", None, "ops", age_days=120),
    # The canary's synthetic memories: duplicates, near duplicates and old, and never counted.
    Note(
        "canary-1", "Alice prefers dark mode in her editor", CANARY_USER_ID, run_id="canary-x", age_days=400
    ),
    Note(
        "canary-2", "Alice prefers dark mode in her editor", CANARY_USER_ID, run_id="canary-x", age_days=400
    ),
    Note(
        "canary-3", "Alice prefers dark mode in her editor.", CANARY_USER_ID, run_id="canary-x", age_days=400
    ),
]


@dataclass
class Audited:
    path: Path
    ids: dict[str, str]
    now: dt.datetime

    def keys(self, ids: list[str] | set[str]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


@pytest.fixture(scope="module")
def notes_store(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Audited:
    path = tmp_path_factory.mktemp("audit-qdrant")
    now = dt.datetime.now(dt.UTC)
    ids: dict[str, str] = {}
    with open_mem0(path, embedding_model) as memory:
        for note in NOTES:
            result = memory.add(
                note.text, user_id=note.user_id, agent_id=note.agent_id, run_id=note.run_id, infer=False
            )
            (added,) = result["results"]
            ids[note.key] = str(added["id"])
        client: QdrantClient = memory.vector_store.client
        for note in NOTES:
            moment = (now - dt.timedelta(days=note.age_days)).isoformat()
            client.set_payload(
                COLLECTION, payload={"created_at": moment, "updated_at": moment}, points=[ids[note.key]]
            )
    return Audited(path, ids, now)


@pytest.fixture
def private(notes_store: Audited, tmp_path: Path) -> Audited:
    copy = tmp_path / "qdrant"
    shutil.copytree(notes_store.path, copy)
    return Audited(copy, dict(notes_store.ids), notes_store.now)


@pytest.fixture
def client_of() -> Iterator[Any]:
    opened: list[QdrantClient] = []

    def open_(path: Path) -> QdrantClient:
        client = QdrantClient(path=str(path))
        opened.append(client)
        return client

    yield open_
    for client in opened:
        client.close()


# The two ways near duplicates are found: Qdrant's batched searches by point id (a server's), and
# the scope's vectors compared in this process (local mode's). Both must find the same pairs.
METHODS = {"qdrant-search": False, "in-process": True}


@pytest.fixture(params=sorted(METHODS))
def local(request: pytest.FixtureRequest) -> bool:
    return METHODS[request.param]


def run_audit(store: Audited, dry_run: bool = False, local: bool = True, **spec: Any) -> AuditSummary:
    client = QdrantClient(path=str(store.path))
    try:
        return audit.audit_collection(
            client, COLLECTION, AuditSpec.model_validate(spec), now=store.now, dry_run=dry_run, local=local
        )
    finally:
        client.close()


def test_mem0_stores_one_content_hash_per_text(notes_store: Audited) -> None:
    client = QdrantClient(path=str(notes_store.path))
    try:
        records = client.retrieve(
            COLLECTION, ids=[notes_store.ids["editor-1"], notes_store.ids["editor-2"]], with_payload=True
        )
        first, second = ((r.payload or {}).get("hash") for r in records)
        assert first and first == second
    finally:
        client.close()


def test_exact_duplicates_are_the_copies_beyond_the_oldest_of_a_scope(notes_store: Audited) -> None:
    result = run_audit(notes_store, sampleSize=10)
    exact = result.exact_duplicates
    assert notes_store.keys(exact.sample_ids) == {"editor-2", "editor-3", "deploy-2"}
    assert exact.count == 3 and exact.scopes == 2
    # Every memory but the canary's is audited, in the scopes alice, bob, alice+helper, alice+run, ops.
    assert result.memories == len(NOTES) - 3 and result.scopes == 5


def test_near_duplicates_are_pairs_of_distinct_texts_of_a_scope(notes_store: Audited, local: bool) -> None:
    result = run_audit(notes_store, local=local, sampleSize=10)
    near = result.near_duplicates
    assert near is not None
    # alice: editor~editor-dot, editor~editor-lower, editor-dot~editor-lower; ops: deploy~deploy-near.
    assert near.count == 4 and near.scopes == 2
    assert notes_store.keys(near.sample_ids) == {
        "editor-1",
        "editor-dot",
        "editor-lower",
        "deploy-1",
        "deploy-near",
    }


def test_qdrant_searches_once_per_text_and_again_within_a_crowded_scope(notes_store: Audited) -> None:
    result = run_audit(notes_store, local=False)
    # One query per distinct text of every scope with two texts or more (alice: 4 texts, ops: 3), and
    # again within alice's scope for her three look-alikes, whose nearest memories in the whole
    # collection are all copies in other scopes (bob's, the agent's, the run's, the canary's).
    assert result.near_duplicate_searches == 7 + 3
    # In local mode the vectors are compared in the process: Qdrant runs no search.
    assert run_audit(notes_store, local=True).near_duplicate_searches == 0


def test_the_threshold_decides_what_is_near(notes_store: Audited, local: bool) -> None:
    loose = run_audit(notes_store, local=local, nearDuplicateSimilarity=0.9, sampleSize=10).near_duplicates
    strict = run_audit(notes_store, local=local, nearDuplicateSimilarity=0.999, sampleSize=10).near_duplicates
    assert loose is not None and strict is not None
    # At 0.9 the paraphrase (0.913 to the original and the lowercase copy, 0.8996 to the one with a
    # full stop) joins alice's three look-alikes: 5 pairs there, and ops' pair.
    assert loose.count == 6
    assert "editor-paraphrase" in notes_store.keys(loose.sample_ids)
    # Only the lowercase copy embeds exactly like the original.
    assert strict.count == 1 and notes_store.keys(strict.sample_ids) == {"editor-1", "editor-lower"}


def test_near_duplicates_can_be_turned_off(notes_store: Audited) -> None:
    result = run_audit(notes_store, nearDuplicates=False)
    assert result.near_duplicates is None and result.near_duplicate_searches == 0


def test_stale_memories_by_last_change(notes_store: Audited) -> None:
    result = run_audit(notes_store, staleAfter="90d", sampleSize=2)
    # deploy-1 (200 days), deploy-2 (150), latency (120), deploy-near (100): not the canary's (400).
    assert result.stale.count == 4 and result.stale.scopes == 1
    assert notes_store.keys(result.stale.sample_ids) == {"deploy-1", "deploy-2"}, "the stalest first"
    assert run_audit(notes_store, staleAfter="1h").stale.count == len(NOTES) - 3


def test_samples_are_capped(notes_store: Audited) -> None:
    result = run_audit(notes_store, sampleSize=1)
    assert [len(f.sample_ids) for f in result.findings()] == [1, 1, 1]
    assert run_audit(notes_store, sampleSize=0).exact_duplicates.sample_ids == []


def test_a_dry_run_dedupe_deletes_nothing(private: Audited) -> None:
    before = point_ids(private.path)
    result = run_audit(private, dry_run=True, dedupe="exact")
    assert point_ids(private.path) == before
    assert result.exact_duplicates.count == 3 and result.deduplicated == 0


def test_dedupe_keeps_the_oldest_of_each_text(private: Audited) -> None:
    before = point_ids(private.path)
    result = run_audit(private, dedupe="exact")
    gone = private.keys(before - point_ids(private.path))
    assert gone == {"editor-2", "editor-3", "deploy-2"}
    assert result.deduplicated == 3
    # Nothing left to dedupe; the canary's own copies are still there.
    again = run_audit(private, dedupe="exact")
    assert again.exact_duplicates.count == 0 and again.deduplicated == 0
    assert {"canary-1", "canary-2"} <= private.keys(point_ids(private.path))


def test_without_dedupe_nothing_is_deleted(private: Audited) -> None:
    before = point_ids(private.path)
    run_audit(private)
    assert point_ids(private.path) == before


def test_retention_never_deletes_the_canary_scope(private: Audited) -> None:
    client = QdrantClient(path=str(private.path))
    try:
        summary = ExpirationSummary(collection=COLLECTION)
        spec = MemoryPolicySpec.model_validate({"rules": [{"name": "all", "maxAge": "1h"}]})
        purge.expire_store(client, COLLECTION, spec, summary, now=private.now, create_indexes=False)
    finally:
        client.close()
    assert private.keys(point_ids(private.path)) == {"canary-1", "canary-2", "canary-3"}
    assert summary.deleted == len(NOTES) - 3


def test_the_expire_command_reports_the_audit(private: Audited, tmp_path: Path) -> None:
    from memory_operator.cli import main

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"rules": [], "audit": {"dedupe": "exact", "staleAfter": "90d"}}))
    log = tmp_path / "termination-log"
    code = main(
        [
            "expire",
            "--policy-file",
            str(policy),
            "--qdrant-path",
            str(private.path),
            "--collection",
            COLLECTION,
            "--termination-log",
            str(log),
            "--store-name",
            "mem",
        ]
    )
    assert code == 0
    summary = ExpirationSummary.model_validate_json(log.read_text())
    assert summary.audit is not None
    assert (summary.audit.exact_duplicates.count, summary.audit.deduplicated) == (3, 3)
    assert summary.audit.near_duplicates is not None and summary.audit.near_duplicates.count == 4
    run = summary.to_store_run("2026-01-01T00:00:00Z").wire()
    assert run["audit"]["exactDuplicates"]["count"] == 3 and run["audit"]["stale"]["count"] == 4


def test_the_termination_message_drops_samples_before_counts() -> None:
    finding = {"count": 9, "scopes": 2, "sampleIds": ["x" * 36] * 10}
    summary = ExpirationSummary.model_validate(
        {
            "rules": [{"name": f"rule-{i}", "matched": i} for i in range(40)],
            "audit": {"exactDuplicates": finding, "nearDuplicates": finding, "stale": finding},
        }
    )
    message = summary.termination_message(limit=1500)
    assert len(message.encode()) <= 1500
    kept = ExpirationSummary.model_validate_json(message)
    assert kept.audit is not None and kept.audit.exact_duplicates.count == 9
    assert kept.audit.stale.sample_ids == []
    # Under the Kubernetes limit the samples stay.
    full = ExpirationSummary.model_validate_json(summary.termination_message())
    assert full.audit is not None and len(full.audit.stale.sample_ids) == 10


def test_a_crowd_of_look_alikes_in_other_scopes_hides_no_pair(local: bool) -> None:
    """Twenty users hold the same text; alice holds it twice, reworded. The nearest memories of hers
    in the whole collection are all other users' copies: the within-scope query still finds her pair."""
    from qdrant_client import models as qm

    client = QdrantClient(":memory:")
    client.create_collection("crowd", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.COSINE))
    stamp = "2026-01-01T00:00:00+00:00"

    def point(number: int, user: str, text_hash: str, vector: list[float]) -> qm.PointStruct:
        payload = {"hash": text_hash, "user_id": user, "created_at": stamp, "updated_at": stamp}
        return qm.PointStruct(id=number, vector=vector, payload=payload)

    points = [point(i, f"user-{i}", "same", [1.0, 0.0]) for i in range(20)]
    points += [point(100, "alice", "same", [1.0, 0.0]), point(101, "alice", "reworded", [1.0, 0.05])]
    client.upsert("crowd", points=points)
    spec = AuditSpec.model_validate({"sampleSize": 10})
    now = dt.datetime.now(dt.UTC)
    result = audit.audit_collection(client, "crowd", spec, now=now, dry_run=True, local=local)
    assert result.near_duplicates is not None
    assert result.near_duplicates.count == 1 and set(result.near_duplicates.sample_ids) == {"100", "101"}
    if not local:
        # Both of alice's first answers were crowded, so both were asked again within her scope.
        assert result.near_duplicate_searches == 4
