"""One canary run against a memory server, through its own REST API as an agent would use it.

1. Synthetic memories older than a day in the reserved scope are deleted: runs killed before their
   clean-up leave no trace for long.
2. Each fact of the scenario is added verbatim (`infer: false`) as the reserved user, under a run id
   of this run's own (`POST /memories`).
3. Each question is asked (`POST /search`, top k) and timed from the client; an expected fact counts
   as found when the memory written for it comes back among the k results with the text it was
   written with, so a store that loses a memory, or returns another text for it, misses it.
4. Everything of the run is deleted (`DELETE /memories` for its run id) and checked gone.

recall@k is found / expected over all questions; latencies are the searches' p50 and p95
(nearest rank).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx

from memory_operator.api.canary import MISSED_LISTED, CanarySummary
from memory_operator.canary.scenario import Scenario
from memory_operator.synthetic import CANARY_USER_ID, RUN_ID_PREFIX

log = logging.getLogger("memory_operator.canary")

# Leftovers of runs that never cleaned up are deleted once this old.
LEFTOVER_AGE = dt.timedelta(days=1)
LIST_LIMIT = 1000


class ServerError(Exception):
    """The memory server could not be reached or refused a request."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (not empty)."""
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def new_run_id() -> str:
    return RUN_ID_PREFIX + secrets.token_hex(6)


class Probe:
    """The canary's calls to one server, each checked and, for searches, timed."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self.http.request(method, path, **options)
        except httpx.HTTPError as error:
            raise ServerError(f"the memory server at {self.http.base_url} is unreachable: {error}") from error
        if response.is_error:
            raise ServerError(
                f"the memory server answered {method} {path} with HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def add(self, text: str, run_id: str) -> dict[str, Any] | None:
        """Store `text` verbatim as the reserved user in `run_id`; the memory the server made."""
        body = {"messages": text, "user_id": CANARY_USER_ID, "run_id": run_id, "infer": False}
        results = self.call("POST", "/memories", json=body).get("results") or []
        return results[0] if results else None

    def search(self, query: str, run_id: str, top_k: int) -> tuple[list[dict[str, Any]], float]:
        """The top k memories of the run for `query`, and the request's latency in milliseconds."""
        body = {"query": query, "user_id": CANARY_USER_ID, "run_id": run_id, "top_k": top_k}
        started = time.perf_counter()
        found = self.call("POST", "/search", json=body)
        elapsed = (time.perf_counter() - started) * 1000
        return list(found.get("results") or []), elapsed

    def listed(self, run_id: str | None = None) -> list[dict[str, Any]]:
        params = {"user_id": CANARY_USER_ID, "top_k": LIST_LIMIT, "show_expired": "true"}
        if run_id is not None:
            params["run_id"] = run_id
        return list(self.call("GET", "/memories", params=params).get("results") or [])

    def delete_run(self, run_id: str) -> None:
        self.call("DELETE", "/memories", params={"user_id": CANARY_USER_ID, "run_id": run_id})

    def delete_leftovers(self, now: dt.datetime) -> int:
        """Delete runs of the reserved scope whose memories are older than a day; how many memories."""
        stale_runs: dict[str, int] = {}
        for memory in self.listed():
            created = _moment(memory.get("created_at"))
            run_id = memory.get("run_id")
            if run_id and created is not None and now - created > LEFTOVER_AGE:
                stale_runs[run_id] = stale_runs.get(run_id, 0) + 1
        for run_id in stale_runs:
            self.delete_run(run_id)
        return sum(stale_runs.values())


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def ask(
    probe: Probe, scenario: Scenario, written: dict[str, str], run_id: str, summary: CanarySummary
) -> list[float]:
    """Ask every question; count the expected facts found unchanged; the searches' latencies."""
    texts = {memory_id: scenario.fact(fact_id).text for fact_id, memory_id in written.items()}
    latencies: list[float] = []
    for question in scenario.questions:
        results, elapsed = probe.search(question.text, run_id, summary.top_k)
        latencies.append(elapsed)
        returned = {str(r.get("id")): str(r.get("memory")) for r in results[: summary.top_k]}
        hits = 0
        for fact_id in question.expects:
            memory_id = written.get(fact_id)
            if memory_id is not None and returned.get(memory_id) == texts[memory_id]:
                hits += 1
        summary.found += hits
        if hits < len(question.expects) and len(summary.missed) < MISSED_LISTED:
            summary.missed.append(question.id)
    return latencies


def run_scenario(
    probe: Probe, scenario: Scenario, summary: CanarySummary, *, now: dt.datetime | None = None
) -> CanarySummary:
    """Run `scenario` through `probe`, filling `summary` (its k and thresholds already set)."""
    started = time.monotonic()
    run_id = new_run_id()
    summary.scenario = scenario.version
    summary.facts = len(scenario.facts)
    summary.questions = len(scenario.questions)
    summary.expected = scenario.expected
    left = probe.delete_leftovers(now or dt.datetime.now(dt.UTC))
    if left:
        log.info("deleted %d synthetic memories left by earlier runs", left)
    written: dict[str, str] = {}
    try:
        for fact in scenario.facts:
            memory = probe.add(fact.text, run_id)
            if memory is not None:
                written[fact.id] = str(memory["id"])
        log.info("wrote %d of %d facts as run %s", len(written), len(scenario.facts), run_id)
        latencies = ask(probe, scenario, written, run_id, summary)
    finally:
        probe.delete_run(run_id)
        summary.left_behind = len(probe.listed(run_id))
    summary.recall = round(summary.found / summary.expected, 4) if summary.expected else None
    summary.latency_p50_milliseconds = round(percentile(latencies, 0.50), 1)
    summary.latency_p95_milliseconds = round(percentile(latencies, 0.95), 1)
    summary.duration_seconds = round(time.monotonic() - started, 3)
    return summary
