"""A live builtin memory server (real mem0, Qdrant local mode, the local model) for the canary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from server.conftest import API_KEY, LiveServer, ServerThread, local_settings

__all__ = ["API_KEY"]


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    from mem0.configs.embeddings.base import BaseEmbedderConfig
    from mem0.embeddings.huggingface import HuggingFaceEmbedding

    from memory_operator.server.settings import embedder_config

    return HuggingFaceEmbedding(BaseEmbedderConfig(**embedder_config(None, 384)["config"]))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[LiveServer]:
    settings = local_settings(tmp_path_factory.mktemp("canary-qdrant"))
    metrics = ServerMetrics()
    slot = ServiceSlot(
        build=lambda: build_service(settings, ServerConfig(), metrics, embedding_model=embedding_model)
    )
    slot.build_until_ready()
    with ServerThread(slot, metrics) as live:
        yield live
