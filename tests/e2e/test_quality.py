"""Memory quality on a real control plane: the recall canary's CronJob, its runs in the store's
`lastCanary` and the operator's metrics; the audit of a policy in the store's `lastRuns` entry."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from e2e.cluster import InPod, run_job_command, secret_value, store, wait_for
from e2e.conftest import Cluster
from e2e.test_policy import policy
from e2e.test_store import create_store, warning_events
from memory_operator import env
from memory_operator.api.canary import CanarySummary
from memory_operator.render import names


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A builtin memory server on this machine (real mem0, Qdrant local mode, the local model), whose
    key is set per test: what the canary's pod reaches through the cluster's network."""
    from memory_operator.server.app import ServiceSlot
    from memory_operator.server.auth import ApiKeys
    from memory_operator.server.build import build_service
    from memory_operator.server.config import ServerConfig
    from memory_operator.server.metrics import ServerMetrics
    from memory_operator.server.settings import ServerSettings
    from server.conftest import ServerThread

    keys: dict[str, Any] = {}

    def start(api_key: str) -> Any:
        settings = ServerSettings(
            api_key=api_key, qdrant_path=tmp_path_factory.mktemp("canary-qdrant"), host="127.0.0.1"
        )
        metrics = ServerMetrics()
        slot = ServiceSlot(build=lambda: build_service(settings, ServerConfig(), metrics))
        slot.build_until_ready()
        thread = ServerThread(slot, metrics, keys=ApiKeys(api_key, None))
        keys["thread"] = thread
        return thread.__enter__()

    yield start
    if "thread" in keys:
        keys["thread"].__exit__(None, None, None)


def last_canary(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    body = cluster.client.get("MemoryStore", ns, name) or {}
    return (body.get("status") or {}).get("lastCanary")


def test_canary_runs_from_its_cronjob_into_the_stores_status_and_metrics(
    cluster: Cluster, tmp_path: Path, memory_server: Any
) -> None:
    ns = cluster.client.namespace("canary")
    s = create_store(cluster, store(ns, "s", monitoring={"canary": {"schedule": "*/15 * * * *"}}))
    cronjob_name = names.canary_cronjob_name(s)
    cronjob = wait_for(lambda: cluster.client.get("CronJob", ns, cronjob_name), "the canary CronJob")
    assert cronjob["spec"]["schedule"] == "*/15 * * * *"
    secret = wait_for(
        lambda: cluster.client.get("Secret", ns, names.credentials_secret_name(s)), "the store's keys"
    )

    # The Job the CronJob makes runs here with its pod's environment (the store's own key, from its
    # Secret), against a builtin server on this machine standing in for the store's.
    server = memory_server(secret_value(secret, "api-key"))
    job = cluster.jobs.from_cronjob(ns, cronjob_name, "canary-manual-1")
    pod = cluster.jobs.pod(ns, job)
    code, message = run_job_command(cluster.client, pod, tmp_path / "run-1", [], {env.SERVER_URL: server.url})
    summary = CanarySummary.model_validate_json(message)
    assert code == 0 and summary.passed, message
    cluster.jobs.finish(ns, job, message)
    last = wait_for(lambda: last_canary(cluster, ns, "s"), "lastCanary")
    assert last["passed"] is True and last["recall"] == 1.0 and last["job"] == job
    assert last["latencyP95Milliseconds"] == summary.latency_p95_milliseconds and last["scenario"] == "v1"
    labels = f'namespace="{ns}",store="s"'
    metrics = wait_for(
        lambda: (
            (text := cluster.operator.metrics())
            and f"memory_operator_canary_recall{{{labels}}} 1.0" in text
            and text
        ),
        "the canary's gauges",
    )
    assert f"memory_operator_canary_recall_threshold{{{labels}}} 0.95" in metrics
    assert f'memory_operator_canary_latency_seconds{{namespace="{ns}",quantile="0.95",store="s"}}' in metrics
    assert f"memory_operator_canary_passed{{{labels}}} 1.0" in metrics

    # A run of a store that lost memories fails its Job at once and says so, in status and an Event.
    failing = CanarySummary(
        store="s", namespace=ns, scenario="v1", questions=36, top_k=5, expected=36, found=29,
        recall=0.8056, latency_p50_milliseconds=20.0, latency_p95_milliseconds=80.0, missed=["q04"],
    )  # fmt: skip
    job = cluster.jobs.from_cronjob(ns, cronjob_name, "canary-manual-2")
    cluster.jobs.finish(ns, job, failing.termination_message(), succeeded=False)
    last = wait_for(
        lambda: (c := last_canary(cluster, ns, "s")) and c["job"] == job and c, "the failed run in lastCanary"
    )
    assert last["passed"] is False and last["recall"] == 0.8056
    assert "recall@5 0.8056 is below 0.95" in last["error"]
    wait_for(
        lambda: warning_events(cluster, ns, "MemoryStore", "s", "CanaryFailed"), "a CanaryFailed Warning"
    )
    wait_for(
        lambda: f"memory_operator_canary_passed{{{labels}}} 0.0" in cluster.operator.metrics(),
        "the failed run's gauges",
    )
    # The store's own reconcile leaves the canary's field alone.
    cluster.client.patch("MemoryStore", ns, "s", {"metadata": {"labels": {"touched": "yes"}}})
    wait_for(
        lambda: (b := cluster.client.get("MemoryStore", ns, "s")) and b["metadata"]["generation"] >= 1 and b,
        "the store",
    )
    assert (last_canary(cluster, ns, "s") or {}).get("job") == job

    # Without a canary, the CronJob goes.
    cluster.client.patch("MemoryStore", ns, "s", {"spec": {"monitoring": None}})
    wait_for(lambda: cluster.client.get("CronJob", ns, cronjob_name) is None, "the canary CronJob pruned")


def seeded_with_duplicates(path: Path) -> None:
    """Memories in mem0's layout: alice's text three times, a reworded copy of it, an old one."""
    client = QdrantClient(path=str(path))
    client.create_collection(
        "memories", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    now = dt.datetime.now(dt.UTC)

    def point(text_hash: str, vector: list[float], age_days: int) -> models.PointStruct:
        stamp = (now - dt.timedelta(days=age_days)).isoformat()
        payload = {
            "data": text_hash,
            "hash": text_hash,
            "user_id": "alice",
            "created_at": stamp,
            "updated_at": stamp,
        }
        return models.PointStruct(id=str(uuid.uuid4()), vector=vector, payload=payload)

    client.upsert(
        "memories",
        [
            point("same", [1, 0, 0, 0], 3),
            point("same", [1, 0, 0, 0], 2),
            point("same", [1, 0, 0, 0], 1),
            point("reworded", [1, 0.1, 0, 0], 1),
            point("other", [0, 0, 1, 0], 200),
        ],
    )
    client.close()


def test_the_audit_lands_in_the_stores_run_entry(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("audit")
    s = create_store(cluster, store(ns, "s", {"team": "x"}))
    cluster.client.create(
        policy(
            ns,
            "quality",
            selector={"matchLabels": {"team": "x"}},
            honorExpirationDate=False,
            audit={"staleAfter": "90d", "dedupe": "exact"},
        )
    )
    cronjob = names.expiration_cronjob_name(s, "quality")
    wait_for(lambda: cluster.client.get("CronJob", ns, cronjob), "the policy's CronJob")
    job = cluster.jobs.from_cronjob(ns, cronjob, "quality-manual-1")
    pod = cluster.jobs.pod(ns, job)
    qdrant = tmp_path / "qdrant"
    seeded_with_duplicates(qdrant)
    code, message = run_job_command(
        cluster.client,
        pod,
        tmp_path / "run-1",
        ["--qdrant-path", str(qdrant), "--policy-file", InPod(env.POLICY_PATH)],
        {},
    )
    assert code == 0, message
    assert json.loads(message)["audit"]["deduplicated"] == 2, message
    cluster.jobs.finish(ns, job, message)

    def audit() -> dict[str, Any] | None:
        body = cluster.client.get("MemoryPolicy", ns, "quality") or {}
        runs = (body.get("status") or {}).get("lastRuns") or []
        return runs[0].get("audit") if runs else None

    found = wait_for(audit, "the audit in lastRuns")
    assert found["memories"] == 5 and found["deduplicated"] == 2
    assert (found["exactDuplicates"]["count"], found["exactDuplicates"]["scopes"]) == (2, 1)
    assert found["nearDuplicates"]["count"] == 1 and found["stale"]["count"] == 1
    labels = f'namespace="{ns}",policy="quality",store="s"'
    text = wait_for(
        lambda: (
            (t := cluster.operator.metrics())
            and f"memory_operator_audit_stale_memories{{{labels}}} 1.0" in t
            and t
        ),
        "the audit's gauges",
    )
    # Prometheus's text format sorts the labels.
    assert f'memory_operator_audit_duplicates{{kind="exact",{labels}}} 2.0' in text
    assert f'memory_operator_audit_duplicates{{kind="near",{labels}}} 1.0' in text
