"""`memory-operator expire` end to end: policy file in, memories purged, summary out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memory_operator import cli, env
from memory_operator.api.policy import MemoryPolicySpec

from .conftest import Dataset, point_ids
from .test_purge import STANDARD, STANDARD_DELETES

pytestmark = pytest.mark.slow


def policy_file(tmp_path: Path, policy: dict[str, Any] = STANDARD) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(MemoryPolicySpec.model_validate(policy).wire()))
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_subprocess_purges_and_writes_the_termination_log(store: Dataset, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    before = point_ids(store.path)
    environment = {
        **os.environ,
        env.STORE_NAME: "demo",
        env.STORE_NAMESPACE: "team",
        env.COLLECTION: "memories",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memory_operator",
            "expire",
            "--qdrant-path",
            str(store.path),
            "--policy-file",
            str(policy_file(tmp_path)),
            "--termination-log",
            str(log),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["store"] == "demo" and summary["namespace"] == "team" and summary["error"] is None
    assert {r["name"]: r["deleted"] for r in summary["rules"]} == {
        k: len(v) for k, v in STANDARD_DELETES.items()
    }
    assert summary["deleted"] == summary["matched"] == 5 and summary["dryRun"] is False
    message = json.loads(log.read_text())
    assert message["deleted"] == 5 and message["store"] == "demo"
    assert store.keys(before - point_ids(store.path)) == set().union(*STANDARD_DELETES.values())


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = cli.main(["expire", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_dry_run_flag_deletes_nothing_and_lists_ids(
    store: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = point_ids(store.path)
    args = ["--qdrant-path", str(store.path), "--policy-file", str(policy_file(tmp_path)), "--dry-run"]
    code, summary, _ = run_cli([*args, "--termination-log", str(tmp_path / "log")], capsys)
    assert code == 0 and summary["dryRun"] is True and summary["deleted"] == 0 and summary["matched"] == 5
    assert store.keys({i for r in summary["rules"] for i in r["ids"]}) == set().union(
        *STANDARD_DELETES.values()
    )
    assert point_ids(store.path) == before
    assert "ids" not in json.loads((tmp_path / "log").read_text())["rules"][0]


def test_dry_run_from_the_spec(store: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = point_ids(store.path)
    policy = policy_file(tmp_path, {**STANDARD, "dryRun": True})
    code, summary, _ = run_cli(
        [
            "--qdrant-path",
            str(store.path),
            "--policy-file",
            str(policy),
            "--termination-log",
            str(tmp_path / "l"),
        ],
        capsys,
    )
    assert code == 0 and summary["dryRun"] is True and summary["matched"] == 5
    assert point_ids(store.path) == before


def test_qdrant_unreachable_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "termination-log"
    args = [
        "--qdrant-url",
        f"http://127.0.0.1:{free_port()}",
        "--policy-file",
        str(policy_file(tmp_path)),
        "--termination-log",
        str(log),
        "--store-name",
        "demo",
        "--timeout",
        "5",
    ]
    code, summary, err = run_cli(args, capsys)
    assert code == 1
    assert summary["error"].startswith("Qdrant is unavailable") and summary["store"] == "demo"
    assert summary["deleted"] == 0
    assert json.loads(log.read_text())["error"] == summary["error"]
    assert "Traceback" not in err


def test_invalid_policy_file_fails_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text(json.dumps({"rules": [{"name": "x", "maxAge": "7d", "keep": True}]}))
    args = [
        "--qdrant-path",
        str(tmp_path / "q"),
        "--policy-file",
        str(bad),
        "--termination-log",
        str(tmp_path / "l"),
    ]
    code, summary, err = run_cli(args, capsys)
    assert code == 1 and "not a MemoryPolicy spec" in summary["error"] and "Traceback" not in err
    code, summary, _ = run_cli([*args[:3], str(tmp_path / "missing.json"), *args[4:]], capsys)
    assert code == 1 and "cannot read the policy file" in summary["error"]


def test_settings_come_from_the_environment(
    store: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env.POLICY_FILE, str(policy_file(tmp_path, {"honorExpirationDate": True})))
    monkeypatch.setenv(env.STORE_NAME, "from-env")
    monkeypatch.setenv(env.COLLECTION, "memories")
    monkeypatch.setenv(env.SERVER_FLAVOR, "builtin")
    code, summary, _ = run_cli(
        ["--qdrant-path", str(store.path), "--termination-log", str(tmp_path / "l")], capsys
    )
    assert code == 0 and summary["store"] == "from-env" and summary["collection"] == "memories"
    assert [(r["name"], r["deleted"]) for r in summary["rules"]] == [("expirationDate", 2)]


def test_openmemory_flavor_needs_the_server_url(
    store: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env.SERVER_URL, raising=False)
    args = [
        "--qdrant-path",
        str(store.path),
        "--collection",
        "memories",
        "--server-flavor",
        "openmemory",
        "--policy-file",
        str(policy_file(tmp_path)),
        "--termination-log",
        str(tmp_path / "l"),
    ]
    code, summary, _ = run_cli(args, capsys)
    assert code == 1 and env.SERVER_URL in summary["error"]
    # A dry run only reads Qdrant, so it needs no server.
    code, summary, _ = run_cli([*args, "--dry-run"], capsys)
    assert code == 0 and summary["matched"] == 5
