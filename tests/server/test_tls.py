"""TLS for real: the memory server over HTTPS to a verifying client (and refused by one that trusts
another CA), mutual TLS with its probes on a port of their own, the server and the jobs verifying a TLS
endpoint standing in for Qdrant through qdrant-client's own TLS options, and the embedded mode's
`--tls-cert`/`--tls-key`."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from backup.fake_qdrant import FakeQdrant
from memory_operator import env, pki, tls
from memory_operator.qdrant_node import QdrantError, QdrantNode
from memory_operator.server import serving
from memory_operator.server.app import ServiceSlot, create_app
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service, qdrant_client
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ServerSettings

from .conftest import API_KEY, READ_ONLY_KEY, free_port, local_settings, wait_until

NOW = dt.datetime.now(dt.UTC)
QDRANT_KEY = "qdrant-key"


@dataclass(frozen=True)
class Files:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """A CA and its certificate for localhost, another CA, client certificates of each."""
    folder = tmp_path_factory.mktemp("tls")
    ca = pki.make_ca("test CA", NOW, dt.timedelta(days=30))
    leaf = pki.make_leaf(ca, "localhost", ["localhost"], NOW, NOW + dt.timedelta(days=1))
    other = pki.make_ca("another CA", NOW, dt.timedelta(days=30))
    client = pki.make_leaf(ca, "an agent", [], NOW, NOW + dt.timedelta(days=1), server=False)
    stranger = pki.make_leaf(other, "a stranger", [], NOW, NOW + dt.timedelta(days=1), server=False)
    written = {
        "ca": ca.certificate,
        "cert": leaf.certificate,
        "key": leaf.key,
        "other_ca": other.certificate,
        "client_cert": client.certificate,
        "client_key": client.key,
        "stranger_cert": stranger.certificate,
        "stranger_key": stranger.key,
    }
    for name, text in written.items():
        (folder / f"{name}.pem").write_text(text)
    return Files(**{name: folder / f"{name}.pem" for name in written})


class TlsServer:
    """The memory server's app served by `serving.servers` (as `memory-operator server` serves it), in a
    thread."""

    def __init__(self, slot: ServiceSlot, metrics: ServerMetrics, where: serving.Listening) -> None:
        app = create_app(slot, ApiKeys(API_KEY, READ_ONLY_KEY), metrics, 64 * 1024, host="127.0.0.1")
        self.servers = serving.servers(app, where, None)
        for server in self.servers:
            server.config.log_level = "warning"
        self.thread = threading.Thread(
            target=lambda: asyncio.run(serving.serve_all(self.servers)), daemon=True
        )

    def __enter__(self) -> TlsServer:
        self.thread.start()
        wait_until(lambda: all(s.started for s in self.servers), 60, "the servers to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.servers[0].should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def slot(tmp_path: Path, embedding_model: Any) -> tuple[ServiceSlot, ServerMetrics]:
    """A service of its own for each server: a server closes its service when it stops."""
    settings = local_settings(tmp_path / "qdrant")
    metrics = ServerMetrics()
    built = ServiceSlot(
        build=lambda: build_service(settings, ServerConfig(), metrics, embedding_model=embedding_model)
    )
    built.build_until_ready()
    return built, metrics


def client(url: str, context: ssl.SSLContext) -> httpx.Client:
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30, verify=context
    )


def test_a_client_that_trusts_the_ca_talks_to_the_server_over_https(
    files: Files, slot: tuple[ServiceSlot, ServerMetrics]
) -> None:
    port = free_port()
    where = serving.Listening("127.0.0.1", port, files.cert, files.key)
    with TlsServer(*slot, where), client(f"https://localhost:{port}", tls.client_context(files.ca)) as http:
        assert http.get("/readyz").status_code == 200
        added = http.post(
            "/api/v1/memories/", json={"user_id": "tls-user", "text": "Ada rotates certificates monthly"}
        )
        assert added.status_code == 200, added.text
        found = http.post("/api/v1/memories/filter", json={"user_id": "tls-user"})
        assert found.status_code == 200, found.text
        assert "certificates" in found.text
        # The wrong CA, or the right CA with another name: refused by the client, nothing sent.
        refusing = pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED")
        with client(f"https://localhost:{port}", tls.client_context(files.other_ca)) as stranger, refusing:
            stranger.get("/readyz")
        refusing = pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED")
        with client(f"https://127.0.0.1:{port}", tls.client_context(files.ca)) as wrong_name, refusing:
            wrong_name.get("/readyz")
        # Plain HTTP to a TLS port gets nowhere.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://localhost:{port}/readyz", timeout=5)


def test_mutual_tls_admits_only_certificates_of_the_client_ca(
    files: Files, slot: tuple[ServiceSlot, ServerMetrics]
) -> None:
    port, health = free_port(), free_port()
    where = serving.Listening("127.0.0.1", port, files.cert, files.key, (files.ca,), health)
    url = f"https://localhost:{port}"
    with TlsServer(*slot, where):
        with client(url, tls.client_context(files.ca, files.client_cert, files.client_key)) as agent:
            assert agent.get("/readyz").status_code == 200
            assert agent.get("/api/v1/memories/", params={"user_id": "nobody"}).status_code == 200
        for certificate, key in ((None, None), (files.stranger_cert, files.stranger_key)):
            context = tls.client_context(files.ca, certificate or "", key or "")
            with client(url, context) as refused, pytest.raises(httpx.HTTPError):
                refused.get("/readyz")
        # The kubelet's probes present no certificate: they have a plain port, with the probes alone.
        assert httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{health}/api/v1/memories/", timeout=5).status_code == 404


class TlsQdrant:
    """The fake Qdrant over HTTPS, standing in for a Qdrant with `service.enable_tls`."""

    def __init__(self, files: Files) -> None:
        self.fake = FakeQdrant(api_key=QDRANT_KEY)
        self.port = free_port()
        config = uvicorn.Config(
            self.fake,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(files.cert),
            ssl_keyfile=str(files.key),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"https://localhost:{self.port}"

    def __enter__(self) -> TlsQdrant:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the fake Qdrant to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.fake.stop()


@pytest.fixture(scope="module")
def qdrant(files: Files) -> Iterator[TlsQdrant]:
    with TlsQdrant(files) as running:
        running.fake.create_collection("memories")
        yield running


def test_the_server_verifies_qdrant_with_qdrant_clients_tls_options(files: Files, qdrant: TlsQdrant) -> None:
    settings = ServerSettings(
        api_key="k", qdrant_url=qdrant.url, qdrant_api_key=QDRANT_KEY, qdrant_ca_file=files.ca
    )
    trusted = qdrant_client(settings)
    assert [c.name for c in trusted.get_collections().collections] == ["memories"]
    trusted.close()
    stranger = qdrant_client(dataclasses.replace(settings, qdrant_ca_file=files.other_ca))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        stranger.get_collections()
    stranger.close()
    # No CA file: the system's trust store, which does not know the store's CA either.
    unknown = qdrant_client(dataclasses.replace(settings, qdrant_ca_file=None))
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        unknown.get_collections()
    unknown.close()


def test_the_jobs_verify_qdrant_against_the_ca_file_they_are_given(
    files: Files, qdrant: TlsQdrant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.TLS_CA_FILE, str(files.ca))
    with QdrantNode(qdrant.url, QDRANT_KEY) as node:
        assert node.collections() == ["memories"]
        assert node.is_ready()
        node.create_collection("jobs-made", vectors_config={"size": 4, "distance": "Cosine"})
        assert node.collection_exists("jobs-made")
    monkeypatch.setenv(env.TLS_CA_FILE, str(files.other_ca))
    with QdrantNode(qdrant.url, QDRANT_KEY) as node:
        with pytest.raises(QdrantError, match="CERTIFICATE_VERIFY_FAILED"):
            node.collections()
        assert not node.is_ready()


def test_no_client_of_the_project_turns_verification_off() -> None:
    root = Path(__file__).resolve().parents[2] / "operator"
    offenders = [
        str(path)
        for path in root.rglob("*.py")
        if "verify=False" in path.read_text() or "CERT_NONE" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.slow
def test_the_embedded_server_serves_https_from_a_given_certificate(files: Files, tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "memory_operator",
        "server",
        "--embedded",
        "--data-dir",
        str(tmp_path / "data"),
        "--port",
        str(port),
        "--log-format",
        "plain",
        "--tls-cert",
        str(files.cert),
        "--tls-key",
        str(files.key),
    ]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "MEM0_TELEMETRY": "false", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment
    )
    context = tls.client_context(files.ca)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        assert banner == f"Memory server: https://127.0.0.1:{port}"
        key = process.stdout.readline().split(": ", 1)[1].strip()

        def ready() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return httpx.get(f"https://localhost:{port}/readyz", verify=context).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 90, "the embedded server")
        added = httpx.post(
            f"https://localhost:{port}/api/v1/memories/",
            json={"user_id": "ada", "text": "Ada trusts the local CA"},
            headers={"Authorization": f"Bearer {key}"},
            verify=context,
            timeout=30,
        )
        assert added.status_code == 200, added.text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_inconsistent_tls_flags_stop_the_server(files: Files) -> None:
    import argparse

    from memory_operator.server.main import configure

    def listening(*flags: str) -> Any:
        parser = argparse.ArgumentParser()
        configure(parser)
        return serving.listening(parser.parse_args(list(flags)), "127.0.0.1")

    with pytest.raises(SystemExit, match="go together"):
        listening("--tls-cert", str(files.cert))
    with pytest.raises(SystemExit, match="mutual TLS is TLS first"):
        listening("--tls-client-ca", str(files.ca))
    with pytest.raises(SystemExit, match="no such file"):
        listening("--tls-cert", str(files.cert), "--tls-key", "/nonexistent")
    where = listening(
        "--tls-cert", str(files.cert), "--tls-key", str(files.key), "--tls-client-ca", str(files.ca)
    )
    assert where.scheme == "https" and where.client_cas == (files.ca,)


async def test_the_operator_counts_memories_over_tls_against_the_stores_ca(
    files: Files, qdrant: TlsQdrant
) -> None:
    from memory_operator.controller import counting

    ca = files.ca.read_text()
    assert await counting.count_points(qdrant.url, "memories", QDRANT_KEY, ca_bundle=ca) == 0
    other = files.other_ca.read_text()
    assert await counting.count_points(qdrant.url, "memories", QDRANT_KEY, ca_bundle=other) is None
    assert await counting.count_points(qdrant.url, "memories", QDRANT_KEY) is None
