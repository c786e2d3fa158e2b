"""Fixtures of the backup tests: fake Qdrant nodes, an S3 server (moto), and the roles run in-process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from backup import fake_qdrant
from backup.fake_qdrant import FakeQdrant
from memory_operator import cli, env

API_KEY = "qdrant-test-key"
STORE = "agents"
COLLECTION = "memories"
BUCKET = "memory-backups"

MEMORIES = {
    "1f7a": {"vector": [0.1, 0.2, 0.3, 0.4], "payload": {"data": "likes tea", "user_id": "ada"}},
    "2b8c": {"vector": [0.4, 0.3, 0.2, 0.1], "payload": {"data": "lives in Lyon", "user_id": "ada"}},
    "3c9d": {"vector": [0.0, 1.0, 0.0, 0.0], "payload": {"data": "allergic to nuts", "user_id": "bob"}},
}
ENTITIES = {"4dae": {"vector": [1.0, 0.0, 0.0, 0.0], "payload": {"name": "Lyon"}}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def no_real_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The roles talk to the Kubernetes API: never to the cluster of the machine the tests run on.
    Tests that want an API point KUBECONFIG at the test API server themselves."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.fixture(autouse=True)
def qdrant_contract_kept() -> Iterator[None]:
    """Every request to a fake Qdrant fit Qdrant's API, and every answer the models qdrant-client reads."""
    fake_qdrant.CLUSTERS.clear()
    yield
    violations = [v for cluster in fake_qdrant.CLUSTERS for v in cluster.violations]
    fake_qdrant.CLUSTERS.clear()
    assert violations == [], violations


@pytest.fixture
def qdrant() -> Iterator[FakeQdrant]:
    node = FakeQdrant(api_key=API_KEY).start()
    node.create_collection(COLLECTION, MEMORIES)
    node.create_collection(COLLECTION + "_entities", ENTITIES)
    node.create_collection("someone-elses", {"9": {"vector": [0, 0, 0, 1], "payload": {}}})
    yield node
    node.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket on the S3 server, with the standard AWS credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    for bucket in client.list_buckets().get("Buckets", []):
        objects = client.list_objects_v2(Bucket=bucket["Name"]).get("Contents") or []
        for obj in objects:
            client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
        client.delete_bucket(Bucket=bucket["Name"])
    client.create_bucket(Bucket=BUCKET)
    return client


@dataclass
class Result:
    code: int
    summary: dict[str, Any]
    termination_message: str


@pytest.fixture
def role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `memory-operator <args>` in this process; return its exit code and JSON summary."""

    def invoke(*args: str) -> Result:
        log = tmp_path / "termination-log"
        log.unlink(missing_ok=True)
        capsys.readouterr()
        code = cli.main([*args, "--termination-log", str(log)])
        out = capsys.readouterr().out
        return Result(code, json.loads(out) if out.strip() else {}, log.read_text() if log.exists() else "")

    return invoke


@pytest.fixture
def base_env(monkeypatch: pytest.MonkeyPatch, qdrant: FakeQdrant) -> pytest.MonkeyPatch:
    """The environment the operator renders for the backup and restore jobs of one single-node store."""
    namespace = "team-a"
    for name in vars(env).values():
        if isinstance(name, str) and name.startswith("MEMORY_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env.QDRANT_URL, qdrant.url)
    monkeypatch.setenv(env.QDRANT_API_KEY, API_KEY)
    monkeypatch.setenv(env.COLLECTION, COLLECTION)
    monkeypatch.setenv(env.STORE_NAME, STORE)
    monkeypatch.setenv(env.STORE_NAMESPACE, namespace)
    return monkeypatch


@pytest.fixture
def dir_env(base_env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    backups = tmp_path / "backups"
    backups.mkdir()
    base_env.setenv(env.BACKUP_DIR, str(backups))
    return backups


@pytest.fixture
def s3_env(base_env: pytest.MonkeyPatch, s3: Any, s3_server: str) -> Any:
    base_env.setenv(env.BACKUP_S3_BUCKET, BUCKET)
    base_env.setenv(env.BACKUP_S3_PREFIX, "prod/memory")
    base_env.setenv(env.BACKUP_S3_ENDPOINT, s3_server)
    base_env.setenv(env.BACKUP_S3_REGION, "us-east-1")
    return s3
