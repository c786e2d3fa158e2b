"""The recall canary against a live builtin server: a healthy store passes with recall 1.0, a store that
drops or corrupts memories fails, the thresholds decide, the canary leaves nothing behind, and the
command works against a local server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_operator.api.canary import CanarySummary
from memory_operator.canary import probe, scenario
from memory_operator.cli import main
from memory_operator.synthetic import CANARY_USER_ID
from server.conftest import API_KEY, LiveServer

pytestmark = pytest.mark.slow

SCENARIO = scenario.load()


def run(
    server: LiveServer,
    transport: httpx.BaseTransport | None = None,
    top_k: int = 5,
    **thresholds: Any,
) -> CanarySummary:
    summary = CanarySummary(top_k=top_k, **thresholds)
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
        transport=transport,
    ) as http:
        return probe.run_scenario(probe.Probe(http), SCENARIO, summary)


def synthetic_count(server: LiveServer) -> int:
    """Memories of the reserved scope in Qdrant, whatever the API shows."""
    from qdrant_client import models as qm

    service = server.slot.get()
    query = qm.Filter(must=[qm.FieldCondition(key="user_id", match=qm.MatchValue(value=CANARY_USER_ID))])
    return int(service.client.count(service.collection, count_filter=query, exact=True).count)


class FaultyStore(httpx.BaseTransport):
    """The real server behind a transport that makes it lose or garble some memories right after it
    stored them, as a broken store would: `fault(client, memory_id)` is called after every `n`th add."""

    def __init__(self, server: LiveServer, every: int, fault: Callable[[httpx.Client, str], None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.client = server.client()
        self.every = every
        self.fault = fault
        self.adds = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and request.url.path == "/memories":
            response.read()
            self.adds += 1
            if self.adds % self.every == 0:
                (memory,) = response.json()["results"]
                self.fault(self.client, memory["id"])
        return response


def drop(client: httpx.Client, memory_id: str) -> None:
    assert client.delete(f"/memories/{memory_id}").status_code == 200


def corrupt(client: httpx.Client, memory_id: str) -> None:
    answer = client.put(f"/memories/{memory_id}", json={"text": "The cafeteria closes at noon on Fridays."})
    assert answer.status_code == 200


def test_the_shipped_scenario_holds_together() -> None:
    assert scenario.versions() == ["v1"]
    assert len(SCENARIO.facts) >= 24 and len(SCENARIO.questions) >= len(SCENARIO.facts)
    for question in SCENARIO.questions:
        for fact_id in question.expects:
            # Paraphrased: a question never repeats its fact's wording.
            assert question.text.lower() not in SCENARIO.fact(fact_id).text.lower()


def test_a_healthy_store_passes_with_full_recall(server: LiveServer) -> None:
    summary = run(server)
    assert summary.passed, summary.verdict()
    assert summary.recall == 1.0 and summary.found == summary.expected == SCENARIO.expected
    assert summary.missed == [] and summary.left_behind == 0
    assert summary.latency_p50_milliseconds is not None and summary.latency_p95_milliseconds is not None
    assert 0 < summary.latency_p50_milliseconds <= summary.latency_p95_milliseconds
    assert synthetic_count(server) == 0, "the canary deletes what it wrote"


def test_a_store_that_drops_memories_fails(server: LiveServer) -> None:
    faulty = FaultyStore(server, every=5, fault=drop)
    summary = run(server, transport=faulty)
    assert not summary.passed
    assert summary.recall is not None and summary.recall < 0.95
    assert summary.missed and "recall@5" in summary.verdict()
    assert synthetic_count(server) == 0


def test_a_store_that_corrupts_memories_fails(server: LiveServer) -> None:
    faulty = FaultyStore(server, every=4, fault=corrupt)
    summary = run(server, transport=faulty)
    assert not summary.passed
    # Every fourth fact garbled (f04, f08 ... f32): none of their questions counts, even when its search
    # returns the garbled memory, whose text is not the fact's.
    assert summary.found == SCENARIO.expected - 8 and summary.recall is not None and summary.recall < 0.95
    assert summary.missed == ["q04", "q08", "q12", "q16", "q20", "q24", "q28", "q32"]
    assert synthetic_count(server) == 0


def test_a_slow_store_fails_on_latency(server: LiveServer) -> None:
    summary = run(server, max_latency_p95_milliseconds=0.001)
    assert summary.recall == 1.0 and not summary.passed
    assert "p95 latency" in summary.verdict()


class ReversedRanking(httpx.BaseTransport):
    """The real server behind a transport that ranks badly: it answers every search with five results,
    whatever k was asked, best last."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/search":
            return self.inner.handle_request(request)
        body = {**json.loads(request.content), "top_k": 5}
        forwarded = httpx.Request("POST", request.url, headers=request.headers, json=body)
        answer = self.inner.handle_request(forwarded)
        answer.read()
        results = list(reversed(answer.json()["results"]))
        return httpx.Response(200, json={"results": results})


def test_recall_is_measured_at_k(server: LiveServer) -> None:
    # Every expected fact is among the five results: found at k=5, not in the first one at k=1.
    assert run(server, transport=ReversedRanking(), top_k=5).recall == 1.0
    badly = run(server, transport=ReversedRanking(), top_k=1)
    assert badly.recall is not None and badly.recall < 0.2 and not badly.passed
    # The healthy store ranks each expected fact first.
    assert run(server, top_k=1).recall == 1.0


def test_leftovers_of_killed_runs_are_deleted(server: LiveServer) -> None:
    with server.client() as client:
        added = client.post(
            "/memories",
            json={"messages": "left over", "user_id": CANARY_USER_ID, "run_id": "canary-old", "infer": False},
        )
        (memory,) = added.json()["results"]
    service = server.slot.get()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()
    service.client.set_payload(service.collection, payload={"created_at": old}, points=[memory["id"]])
    assert synthetic_count(server) == 1
    assert run(server).passed
    assert synthetic_count(server) == 0


def test_an_unreachable_server_fails_with_a_reason(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    code = main(
        ["canary", "--server-url", "http://127.0.0.1:9", "--api-key", "k", "--termination-log", str(log)]
    )
    summary = CanarySummary.model_validate_json(log.read_text())
    assert code == 1 and not summary.passed
    assert summary.error is not None and "unreachable" in summary.error


def test_the_command_against_a_local_server(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The embedded server keeps its key there; the canary reads it when given no key.
    (data_dir / "api-key").write_text(API_KEY + "\n")
    log = tmp_path / "termination-log"
    code = main(
        ["canary", "--server-url", server.url, "--data-dir", str(data_dir), "--termination-log", str(log)]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0, printed
    assert printed["recall"] == 1.0 and printed["scenario"] == "v1" and printed["latencyP95Milliseconds"] > 0
    assert CanarySummary.model_validate_json(log.read_text()).passed


def test_the_termination_message_fits() -> None:
    summary = CanarySummary(missed=[f"q{i:03d}" for i in range(500)], error="x" * 10_000)
    message = summary.termination_message(limit=1024)
    assert len(message.encode()) <= 1024
    assert CanarySummary.model_validate_json(message).error is not None


def test_against_the_embedded_server_from_the_command_line(tmp_path: Path) -> None:
    """What a newcomer runs: `memory-operator server --embedded`, then `memory-operator canary`."""
    import os
    import subprocess
    import sys

    from server.conftest import free_port
    from server.test_embedded import embedded_server

    port = free_port()
    with embedded_server(tmp_path / "data", port):
        canary = subprocess.run(
            [
                sys.executable,
                "-m",
                "memory_operator",
                "canary",
                "--server-url",
                f"http://127.0.0.1:{port}",
                "--termination-log",
                str(tmp_path / "log"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "MEM0_TELEMETRY": "false"},
            check=False,
        )
    assert canary.returncode == 0, canary.stderr
    printed = json.loads(canary.stdout)
    assert printed["recall"] == 1.0 and printed["latencyP95Milliseconds"] > 0
    assert "passed: recall@5 1.0000" in canary.stderr
