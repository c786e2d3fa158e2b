"""`memory-operator server --embedded` as a real process: key printed and kept, data kept across restarts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

pytestmark = pytest.mark.slow
REPOSITORY = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0


def is_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except httpx.TransportError:  # the banner is printed before the port is bound
        return False


@contextmanager
def embedded_server(data_dir: Path, port: int) -> Iterator[str]:
    """Run the server until ready; yields the key it printed; stops it with SIGTERM."""
    command = [sys.executable, "-m", "memory_operator", "server", "--embedded", "--data-dir", str(data_dir)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "MEM0_TELEMETRY": "false", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-format", "plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(2)]
        assert banner[0].strip() == f"Memory server: http://127.0.0.1:{port}", banner
        key_line = re.fullmatch(r"API key: (\S+)\n", banner[1])
        assert key_line, banner
        deadline = time.monotonic() + READY_TIMEOUT
        while not is_ready(port):
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        yield key_line.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_restart_keeps_the_key_and_the_memories(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    with embedded_server(data_dir, port) as key:
        headers = {"Authorization": f"Bearer {key}"}
        added = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/memories/",
            json={"user_id": "carol", "text": "Carol deploys on Thursdays"},
            headers=headers,
            timeout=30,
        )
        assert added.status_code == 200, added.text
        demo = subprocess.run(
            [
                sys.executable,
                str(REPOSITORY / "scripts" / "demo.py"),
                "--url",
                f"http://127.0.0.1:{port}",
                # Joined to its option: a generated key may start with "-".
                f"--api-key={key}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "isolation: ok" in demo.stdout
    key_file = data_dir / "api-key"
    assert key_file.read_text().strip() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    written = [data_dir, *data_dir.rglob("*")]
    assert any(p.name == "storage.sqlite" for p in written), "Qdrant's data is under the data directory"
    exposed = [str(p) for p in written if p.stat().st_mode & 0o077]
    assert exposed == [], "everything the embedded server writes is owner-only"

    with embedded_server(data_dir, port) as key_again:
        assert key_again == key
        headers = {"Authorization": f"Bearer {key}"}
        found = httpx.post(
            f"http://127.0.0.1:{port}/search",
            json={"query": "when does Carol deploy?", "user_id": "carol"},
            headers=headers,
            timeout=30,
        ).json()["results"]
        assert [r["memory"] for r in found] == ["Carol deploys on Thursdays"]
