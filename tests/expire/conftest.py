"""Memories written by the real mem0 library into Qdrant's local mode, built once per session.

mem0 stamps `created_at`/`updated_at` with the time of the add, so the ages are set afterwards by
rewriting those two payload keys with qdrant-client, as if the memories had been written earlier.
Tests that delete get their own copy of the Qdrant directory (local mode locks a directory to one
client at a time).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from memory_operator.server.settings import embedder_config, llm_config

COLLECTION = "memories"
DIMS = 384


@dataclass(frozen=True)
class Seed:
    """One memory of the dataset: who it belongs to, what it carries, how old it is."""

    key: str
    text: str
    age_days: float
    user_id: str = "alice"
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    expires_in_days: int | None = None
    # Days since the last update, when it differs from the age (created_at).
    updated_days: float | None = None


SEEDS = [
    Seed(
        "incident-old",
        "The checkout service went down after a bad deploy",
        120,
        metadata={"type": "incident"},
    ),
    Seed("incident-recent", "Payments latency spiked during the sale", 25, metadata={"type": "incident"}),
    Seed(
        "incident-old-in-session",
        "Login outage traced to an expired certificate",
        150,
        run_id="sess-incident",
        metadata={"type": "incident"},
    ),
    Seed(
        "incident-touched",
        "Database failover left replicas lagging",
        200,
        metadata={"type": "incident"},
        updated_days=10,
    ),
    Seed(
        "temporary-old",
        "Staging is frozen until the migration ends",
        10,
        metadata={"categories": ["temporary"]},
    ),
    Seed("temporary-new", "The VPN is flaky today", 2, metadata={"categories": ["temporary", "network"]}),
    Seed(
        "dependency-old",
        "The orders service depends on the inventory API",
        400,
        metadata={"type": "service-dependency", "categories": ["temporary"]},
    ),
    Seed(
        "dependency-expired",
        "The billing service depends on the tax calculator",
        5,
        metadata={"type": "service-dependency"},
        expires_in_days=-3,
    ),
    Seed("session-old", "The user asked to reset their password", 8, agent_id="support-bot", run_id="sess-1"),
    Seed("session-new", "The user prefers email over phone", 1, agent_id="support-bot", run_id="sess-2"),
    Seed("bob-ancient", "Bob likes dark mode", 1000, user_id="bob"),
    Seed("bob-agent-old", "Bob's build agent caches dependencies", 60, user_id="bob", agent_id="builder"),
    Seed("expired", "The office is closed on Friday", 1, user_id="bob", expires_in_days=-1),
    Seed("expires-today", "Free coffee in the lobby today", 1, user_id="bob", expires_in_days=0),
    Seed("expires-later", "The conference starts next month", 1, user_id="bob", expires_in_days=30),
]


@dataclass
class Dataset:
    """A Qdrant directory with the seeds, and the memory id of each seed's key."""

    path: Path
    ids: dict[str, str]
    now: dt.datetime

    def keys(self, ids: set[str]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


def mem0_config(client: QdrantClient) -> dict[str, Any]:
    return {
        "vector_store": {
            "provider": "qdrant",
            "config": {"collection_name": COLLECTION, "embedding_model_dims": DIMS, "client": client},
        },
        "embedder": embedder_config(None, DIMS),
        "llm": llm_config(None),
        "history_db_path": ":memory:",
    }


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    """The local all-MiniLM-L6-v2 model through mem0's embedder, loaded once."""
    from mem0.configs.embeddings.base import BaseEmbedderConfig
    from mem0.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(BaseEmbedderConfig(**embedder_config(None, DIMS)["config"]))


@contextmanager
def open_mem0(path: Path, embedding_model: Any) -> Iterator[Any]:
    """mem0's Memory on the Qdrant directory `path`, with the session's model; closed on exit."""
    from mem0 import Memory

    client = QdrantClient(path=str(path))
    try:
        memory = Memory.from_config(mem0_config(client))
        memory.embedding_model = embedding_model
        yield memory
    finally:
        client.close()


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Dataset:
    path = tmp_path_factory.mktemp("mem0-qdrant")
    now = dt.datetime.now(dt.UTC)
    today = now.date()
    ids: dict[str, str] = {}
    with open_mem0(path, embedding_model) as memory:
        for seed in SEEDS:
            expires = (
                today + dt.timedelta(days=seed.expires_in_days) if seed.expires_in_days is not None else None
            )
            result = memory.add(
                seed.text,
                user_id=seed.user_id,
                agent_id=seed.agent_id,
                run_id=seed.run_id,
                metadata=dict(seed.metadata),
                infer=False,
                expiration_date=expires.isoformat() if expires else None,
            )
            (added,) = result["results"]
            ids[seed.key] = str(added["id"])
        client: QdrantClient = memory.vector_store.client
        for seed in SEEDS:
            created = now - dt.timedelta(days=seed.age_days)
            updated = now - dt.timedelta(
                days=seed.updated_days if seed.updated_days is not None else seed.age_days
            )
            client.set_payload(
                COLLECTION,
                payload={"created_at": iso(created), "updated_at": iso(updated)},
                points=[ids[seed.key]],
                wait=True,
            )
    return Dataset(path=path, ids=ids, now=now)


@pytest.fixture
def store(dataset: Dataset, tmp_path: Path) -> Dataset:
    """A private copy of the dataset's Qdrant directory, for a test that deletes."""
    copy = tmp_path / "qdrant"
    shutil.copytree(dataset.path, copy)
    return Dataset(path=copy, ids=dict(dataset.ids), now=dataset.now)


def point_ids(path: Path, collection: str = COLLECTION) -> set[str]:
    """Ids of every point left in the collection."""
    client = QdrantClient(path=str(path))
    try:
        records, _ = client.scroll(collection, limit=10_000, with_payload=False, with_vectors=False)
        return {str(r.id) for r in records}
    finally:
        client.close()
