"""Qdrant unreachable: 503 (never 500), readiness false, and nothing half-written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from memory_operator.server.app import ServiceSlot
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ServerSettings

from .conftest import API_KEY, READ_ONLY_KEY, ServerThread, free_port, local_settings, wait_until

pytestmark = pytest.mark.slow


def dead_qdrant() -> QdrantClient:
    """A client of a Qdrant that is not there (a free port nobody listens on)."""
    return QdrantClient(url=f"http://127.0.0.1:{free_port()}", timeout=2)


def test_qdrant_down_at_start_gives_503_until_it_comes(embedding_model: Any) -> None:
    settings = ServerSettings(
        api_key=API_KEY, read_only_api_key=READ_ONLY_KEY, qdrant_url=f"http://127.0.0.1:{free_port()}"
    )
    metrics = ServerMetrics()
    slot = ServiceSlot(
        build=lambda: build_service(settings, ServerConfig(), metrics, embedding_model=embedding_model),
        retry_seconds=0.2,
    )
    with ServerThread(slot, metrics) as live, live.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.post("/api/v1/memories/", json={"user_id": "u", "text": "x"})
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert client.get("/api/v1/memories/", params={"user_id": "u"}).status_code == 503
        # The first attempt may still be importing mem0: wait for it to fail rather than race it.
        wait_until(lambda: slot.last_error is not None, 60, "the first build attempt to fail")
        assert slot.service is None


def test_qdrant_lost_after_start_gives_503_and_writes_nothing(tmp_path: Path, embedding_model: Any) -> None:
    metrics = ServerMetrics()
    service = build_service(
        local_settings(tmp_path), ServerConfig(), metrics, embedding_model=embedding_model
    )
    slot = ServiceSlot(build=lambda: service)
    slot.service = service
    with ServerThread(slot, metrics) as live, live.client() as client:
        kept = client.post("/api/v1/memories/", json={"user_id": "u", "text": "written before"}).json()["id"]
        local = service.client
        # Qdrant goes away: every client of it (ours and mem0's) now points at nothing.
        service.client = service.memory.vector_store.client = dead_qdrant()
        assert client.get("/readyz").status_code == 503
        for method, path, body in [
            ("POST", "/api/v1/memories/", {"user_id": "u", "text": "written during the outage"}),
            ("POST", "/search", {"query": "written", "user_id": "u"}),
            ("POST", "/api/v1/memories/actions/archive", {"memory_ids": [kept], "user_id": "u"}),
            ("DELETE", "/api/v1/memories/", {"memory_ids": [kept], "user_id": "u"}),
        ]:
            response = client.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            assert response.json() == {"detail": "memory store unavailable, retry later"}
        service.client = service.memory.vector_store.client = local
        listed = client.get("/api/v1/memories/", params={"user_id": "u"}).json()
        assert [(i["content"], i["state"]) for i in listed["items"]] == [("written before", "active")]
        assert "memory_server_qdrant_errors_total 5.0" in client.get("/metrics").text
