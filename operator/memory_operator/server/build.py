"""Build mem0 and the Qdrant client from the server's settings: one client shared by both.

Qdrant's local mode (embedded) allows one client per directory, so mem0's vector store gets our
client instead of making its own, and mem0's history database is kept in memory: the server keeps no
file of its own beside Qdrant.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from memory_operator import tls
from memory_operator.collection_names import apps_collection
from memory_operator.server.apps import AppRegistry
from memory_operator.server.categorize import Categorizer
from memory_operator.server.config import ServerConfig
from memory_operator.server.local_qdrant import share_between_threads
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import (
    UNUSED_LLM_URL,
    ServerSettings,
    embedder_config,
    has_llm,
    llm_config,
)
from memory_operator.server.store import MemoryService

if TYPE_CHECKING:
    from mem0.embeddings.base import EmbeddingBase
    from qdrant_client import QdrantClient


def offline_environment() -> None:
    """No telemetry and no model downloads, unless the operator of the process says otherwise."""
    os.environ.setdefault("MEM0_TELEMETRY", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def qdrant_client(settings: ServerSettings) -> QdrantClient:
    from qdrant_client import QdrantClient

    if settings.qdrant_url:
        # Over https, Qdrant's certificate is verified against the store's CA bundle.
        verify = tls.verify(settings.qdrant_url, ca=settings.qdrant_ca_file)
        return QdrantClient(
            url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=10, verify=verify
        )
    if settings.qdrant_path is None:
        raise ValueError("either a Qdrant URL or a local Qdrant path is required")
    settings.qdrant_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return share_between_threads(QdrantClient(path=str(settings.qdrant_path)))


def mem0_config(
    settings: ServerSettings, config: ServerConfig, client: QdrantClient, embedder_given: bool
) -> dict[str, Any]:
    """mem0's configuration; with an embedding model given, a placeholder that is replaced after."""
    dims = settings.embedding_dims
    embedder = (
        {"provider": "openai", "config": {"api_key": "unused", "openai_base_url": UNUSED_LLM_URL}}
        if embedder_given
        else embedder_config(settings.embedder, dims)
    )
    return {
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": settings.collection,
                "embedding_model_dims": dims,
                "client": client,
            },
        },
        "embedder": embedder,
        "llm": llm_config(settings.llm),
        "history_db_path": ":memory:",
        "custom_instructions": config.custom_instructions,
    }


def build_service(
    settings: ServerSettings,
    config: ServerConfig,
    metrics: ServerMetrics,
    embedding_model: EmbeddingBase | None = None,
    client: QdrantClient | None = None,
) -> MemoryService:
    """mem0's Memory on a shared Qdrant client; creates the collection when it is missing.

    `embedding_model` reuses an already loaded model (mem0 has no way to be given one, so it is set
    on the Memory after construction); `client` reuses an open Qdrant client.
    """
    offline_environment()
    from mem0 import Memory

    client = client or qdrant_client(settings)
    memory = Memory.from_config(mem0_config(settings, config, client, embedding_model is not None))
    if embedding_model is not None:
        memory.embedding_model = embedding_model
    apps = AppRegistry(client, apps_collection(settings.collection))
    apps.ensure(settings.collection)
    with_llm = has_llm(settings)
    return MemoryService(
        memory=memory,
        client=client,
        collection=settings.collection,
        config=config,
        metrics=metrics,
        allow_infer=with_llm,
        # With a language model, new memories are filed under the configured categories by it.
        categorize=Categorizer(memory.llm, tuple(config.described_categories())) if with_llm else None,
        apps=apps,
    )
