"""A live memory server on a free loopback port, on real mem0, Qdrant local mode and the local model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from memory_operator.server.app import ServiceSlot, create_app
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ServerSettings, embedder_config

API_KEY = "test-read-write-key"
READ_ONLY_KEY = "test-read-only-key"
START_TIMEOUT = 60.0
# MCP event streams of the test servers close after this long without data.
STREAM_IDLE_SECONDS = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    slot: ServiceSlot
    metrics: ServerMetrics

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what}")


class ServerThread:
    """uvicorn in a thread, stopped on exit."""

    def __init__(
        self,
        slot: ServiceSlot,
        metrics: ServerMetrics,
        max_body_bytes: int = 64 * 1024,
        stream_idle_seconds: float = STREAM_IDLE_SECONDS,
        cors_origins: tuple[str, ...] = (),
        keys: ApiKeys | None = None,
        max_sse_sessions: int = 256,
    ) -> None:
        self.port = free_port()
        app = create_app(
            slot,
            keys or ApiKeys(API_KEY, READ_ONLY_KEY),
            metrics,
            max_body_bytes,
            host="127.0.0.1",
            stream_idle_seconds=stream_idle_seconds,
            cors_origins=cors_origins,
            max_sse_sessions=max_sse_sessions,
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.live = LiveServer(f"http://127.0.0.1:{self.port}", slot, metrics)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, START_TIMEOUT, "the server to start")
        return self.live

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    """The local all-MiniLM-L6-v2 model through mem0's embedder, loaded once for the session."""
    from mem0.configs.embeddings.base import BaseEmbedderConfig
    from mem0.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(BaseEmbedderConfig(**embedder_config(None, 384)["config"]))


def local_settings(path: Path) -> ServerSettings:
    return ServerSettings(
        api_key=API_KEY, read_only_api_key=READ_ONLY_KEY, qdrant_path=path, host="127.0.0.1"
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, embedding_model: Any) -> Iterator[LiveServer]:
    """One server for the session's REST and MCP tests; tests keep apart by using their own user ids."""
    settings = local_settings(tmp_path_factory.mktemp("qdrant"))
    config = ServerConfig.model_validate(
        {
            "categories": [
                "incident",
                {"name": "runbook", "description": "How to operate", "expiration": "never"},
            ],
            "defaultExpiration": {"temporary": "3d"},
        }
    )
    metrics = ServerMetrics()
    slot = ServiceSlot(
        build=lambda: build_service(settings, config, metrics, embedding_model=embedding_model)
    )
    slot.build_until_ready()
    with ServerThread(slot, metrics) as live:
        yield live


@pytest.fixture
def user(request: pytest.FixtureRequest) -> str:
    """A user id of this test alone."""
    return "u-" + request.node.name.replace("[", "-").replace("]", "")[:80]
