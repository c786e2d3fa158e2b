"""Memory quality in status and metrics: the canary's `lastCanary` (its own writer), the audit in a
policy's `lastRuns` entry, and the gauges the dashboard and the alert read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import REGISTRY

from memory_operator.api.store import MemoryStoreStatus
from memory_operator.controller import act, metrics, quality, results, sync
from memory_operator.controller.cache import JOB_PODS, POLICIES, STORES, Cache
from memory_operator.controller.decide import Decision

NOW = "2026-01-02T03:04:05Z"
PASSED = {
    "scenario": "v1",
    "questions": 36,
    "topK": 5,
    "expected": 36,
    "found": 36,
    "recall": 1.0,
    "latencyP50Milliseconds": 18.5,
    "latencyP95Milliseconds": 240.0,
    "minRecall": 0.95,
    "maxLatencyP95Milliseconds": 2000.0,
}
LOW_RECALL = {**PASSED, "found": 30, "recall": 0.8333, "missed": ["q04", "q08"]}


def store(last: dict[str, Any] | None = None, **canary: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "mem", "namespace": "agents"},
        "spec": {"monitoring": {"canary": canary}},
    }
    if last is not None:
        body["status"] = {"lastCanary": last}
    return body


def job(
    condition: str | None, name: str = "mem-canary-29000000", at: str = "2026-01-02T03:02:00Z"
) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "lastTransitionTime": at}] if condition else []
    return {"metadata": {"name": name, "namespace": "agents"}, "status": {"conditions": conditions}}


def pod(summary: dict[str, Any] | str) -> dict[str, Any]:
    message = summary if isinstance(summary, str) else json.dumps(summary)
    terminated = {"message": message, "finishedAt": "2026-01-02T03:02:00Z"}
    return {"status": {"containerStatuses": [{"name": "canary", "state": {"terminated": terminated}}]}}


def test_a_running_canary_writes_nothing() -> None:
    assert quality.canary_record(store(), job(None), [], NOW) is None


def test_a_passed_run_is_the_stores_last_canary() -> None:
    record = quality.canary_record(store(), job("Complete"), [pod(PASSED)], NOW)
    assert record is not None and record.events == []
    assert record.last_canary == {
        "time": "2026-01-02T03:02:00Z",
        "passed": True,
        "recall": 1.0,
        "topK": 5,
        "latencyP50Milliseconds": 18.5,
        "latencyP95Milliseconds": 240.0,
        "scenario": "v1",
        "questions": 36,
        "job": "mem-canary-29000000",
    }
    # It parses as the status model says.
    assert MemoryStoreStatus.model_validate({"lastCanary": record.last_canary}).last_canary is not None


def test_a_failed_run_says_why_with_a_warning() -> None:
    record = quality.canary_record(store(), job("Failed"), [pod(LOW_RECALL)], NOW)
    assert record is not None
    assert record.last_canary["passed"] is False and record.last_canary["recall"] == 0.8333
    assert "recall@5 0.8333 is below 0.95" in record.last_canary["error"]
    (event,) = record.events
    assert event.reason == "CanaryFailed" and event.warning


def test_a_job_that_failed_never_passed() -> None:
    # The Job failed (e.g. killed past its deadline) although its summary, written earlier, looked fine.
    record = quality.canary_record(store(), job("Failed"), [pod(PASSED)], NOW)
    assert record is not None and record.last_canary["passed"] is False
    assert "the canary Job failed" in record.last_canary["error"]
    # No summary at all.
    bare = quality.canary_record(store(), job("Failed"), [], NOW)
    assert bare is not None and bare.last_canary["passed"] is False
    assert "without a summary" in bare.last_canary["error"]
    garbled = quality.canary_record(store(), job("Failed"), [pod("Traceback: boom")], NOW)
    assert garbled is not None and "boom" in garbled.last_canary["error"]


def test_only_a_newer_run_replaces_the_last_one() -> None:
    current = {"time": "2026-01-02T03:02:00Z", "job": "mem-canary-29000000", "passed": True}
    assert quality.canary_record(store(current), job("Complete"), [pod(PASSED)], NOW) is None
    older = job("Complete", name="mem-canary-28999970", at="2026-01-02T02:32:00Z")
    assert quality.canary_record(store(current), older, [pod(PASSED)], NOW) is None
    newer = job("Failed", name="mem-canary-29000030", at="2026-01-02T03:32:00Z")
    assert quality.canary_record(store(current), newer, [pod(LOW_RECALL)], NOW) is not None


def test_a_pass_after_a_failure_is_a_normal_event() -> None:
    failing = {"time": "2026-01-02T02:32:00Z", "job": "mem-canary-28999970", "passed": False}
    record = quality.canary_record(store(failing), job("Complete"), [pod(PASSED)], NOW)
    assert record is not None
    (event,) = record.events
    assert event.reason == "CanaryPassed" and not event.warning


def test_gauges_carry_the_thresholds_of_the_spec() -> None:
    last = quality.canary_record(store(), job("Complete"), [pod(PASSED)], NOW)
    assert last is not None
    gauges = quality.canary_gauges(store(last.last_canary, minRecall=0.9, maxLatencyP95Milliseconds=500))
    assert gauges == {
        "passed": 1.0,
        "time": results_epoch("2026-01-02T03:02:00Z"),
        "min_recall": 0.9,
        "max_p95_seconds": 0.5,
        "recall": 1.0,
        "p50_seconds": 0.0185,
        "p95_seconds": 0.24,
    }
    # The defaults of the spec.
    defaults = quality.canary_gauges(store(last.last_canary))
    assert defaults is not None and (defaults["min_recall"], defaults["max_p95_seconds"]) == (0.95, 2.0)
    # No canary, or no run yet: nothing to show.
    assert (
        quality.canary_gauges({"metadata": {}, "spec": {}, "status": {"lastCanary": last.last_canary}})
        is None
    )
    assert quality.canary_gauges(store()) is None


def results_epoch(text: str) -> float:
    return quality.results_epoch(text)


def test_the_reconcile_never_writes_last_canary() -> None:
    """The store's reconcile applies its status without `lastCanary`, so that server-side apply leaves
    the canary writer's field alone; a change of `lastCanary` alone is no reason to write."""
    last = {"time": "2026-01-02T03:02:00Z", "passed": True}
    body = {
        "metadata": {"name": "mem", "namespace": "agents"},
        "status": {"phase": "Ready", "lastCanary": last},
    }
    previous = MemoryStoreStatus.model_validate(body["status"])
    applied: list[dict[str, Any]] = []

    class Kube:
        async def apply_status(self, resource: Any, namespace: str, name: str, fields: Any, *_: Any) -> None:
            applied.append(dict(fields))

    asyncio.run(act.report(Kube(), body, Decision(status=previous)))  # type: ignore[arg-type]
    assert applied == []
    changed = previous.model_copy(update={"phase": "Degraded"})
    asyncio.run(act.report(Kube(), body, Decision(status=changed)))  # type: ignore[arg-type]
    (fields,) = applied
    assert fields["phase"] == "Degraded" and "lastCanary" not in fields


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_record_canary_writes_with_its_own_manager_and_sets_the_gauges() -> None:
    written: list[tuple[Any, ...]] = []

    class Kube:
        async def apply_status(
            self, resource: Any, namespace: str, name: str, fields: Any, manager: str
        ) -> None:
            written.append((resource.kind, namespace, name, fields, manager))

    body = store(minRecall=0.97)
    finished = job("Failed", name="mem-canary-1")
    cache = Cache(
        {
            STORES.index_id: {"agents": [body]},
            JOB_PODS.index_id: {("agents", "mem-canary-1"): [pod(LOW_RECALL)]},
        }
    )
    posted: list[Any] = []
    original = sync.post
    sync.post = posted.append  # type: ignore[assignment]
    try:
        assert asyncio.run(sync.record_canary(Kube(), cache, finished, "mem"))  # type: ignore[arg-type]
    finally:
        sync.post = original  # type: ignore[assignment]
    ((kind, namespace, name, fields, manager),) = written
    assert (kind, namespace, name, manager) == ("MemoryStore", "agents", "mem", quality.CANARY_MANAGER)
    assert list(fields) == ["lastCanary"] and fields["lastCanary"]["passed"] is False
    assert [e.reason for e in posted] == ["CanaryFailed"]
    labels = {"namespace": "agents", "store": "mem"}
    assert sample("memory_operator_canary_recall", **labels) == 0.8333
    assert sample("memory_operator_canary_passed", **labels) == 0.0
    assert sample("memory_operator_canary_recall_threshold", **labels) == 0.97
    assert sample("memory_operator_canary_latency_p95_bound_seconds", **labels) == 2.0
    assert sample("memory_operator_canary_latency_seconds", **labels, quantile="0.95") == 0.24
    assert sample("memory_operator_canary_runs_total", **labels, result="failed") == 1.0
    # The store gone, its gauges go.
    sync.quality_metrics(Cache({}), "agents", "mem")
    assert sample("memory_operator_canary_recall", **labels) is None
    assert sample("memory_operator_canary_latency_seconds", **labels, quantile="0.95") is None


AUDIT = {
    "memories": 1200,
    "scopes": 40,
    "exactDuplicates": {"count": 12, "scopes": 3, "sampleIds": ["a", "b"]},
    "nearDuplicates": {"count": 7, "scopes": 2, "sampleIds": ["c", "d"]},
    "stale": {"count": 90, "scopes": 9, "sampleIds": ["e"]},
    "deduplicated": 12,
    "durationSeconds": 1.5,
}


def test_the_audit_goes_into_the_stores_run_entry() -> None:
    run = results.expiration_run("mem", {"deleted": 3, "audit": AUDIT}, True, NOW)
    assert run["audit"] == {
        "memories": 1200,
        "scopes": 40,
        "exactDuplicates": {"count": 12, "scopes": 3, "sampleIds": ["a", "b"]},
        "nearDuplicates": {"count": 7, "scopes": 2, "sampleIds": ["c", "d"]},
        "stale": {"count": 90, "scopes": 9, "sampleIds": ["e"]},
        "deduplicated": 12,
        "durationSeconds": 1.5,
    }
    assert quality.audit_figures(run) == {
        "memories": 1200.0,
        "exact": 12.0,
        "near": 7.0,
        "stale": 90.0,
        "deduplicated": 12.0,
    }
    # A run without an audit (none asked for, or the run failed before it) has none.
    plain = results.expiration_run("mem", {"deleted": 3}, True, NOW)
    assert "audit" not in plain and quality.audit_figures(plain) is None


def test_audit_gauges_per_store_and_policy_come_back_from_status() -> None:
    run = results.expiration_run("mem", {"audit": {**AUDIT, "nearDuplicates": None}}, True, NOW)
    policy = {"metadata": {"name": "ttl", "namespace": "agents"}, "status": {"lastRuns": [run]}}
    cache = Cache({STORES.index_id: {"agents": [store()]}, POLICIES.index_id: {"agents": [policy]}})
    sync.quality_metrics(cache, "agents", "mem")
    labels = {"namespace": "agents", "store": "mem", "policy": "ttl"}
    assert sample("memory_operator_audit_duplicates", **labels, kind="exact") == 12.0
    # Near duplicates not searched: no figure rather than a zero.
    assert sample("memory_operator_audit_duplicates", **labels, kind="near") is None
    assert sample("memory_operator_audit_stale_memories", **labels) == 90.0
    assert sample("memory_operator_audit_memories", **labels) == 1200.0
    metrics.record_audit("agents", "mem", "ttl", None)
    assert sample("memory_operator_audit_stale_memories", **labels) is None


@pytest.mark.parametrize("passed", [True, False])
def test_last_canary_round_trips_through_the_status_model(passed: bool) -> None:
    record = quality.canary_record(
        store(), job("Complete" if passed else "Failed"), [pod(PASSED if passed else LOW_RECALL)], NOW
    )
    assert record is not None
    model = MemoryStoreStatus.model_validate({"lastCanary": record.last_canary})
    assert model.wire()["lastCanary"] == record.last_canary


@pytest.mark.slow
async def test_the_canary_writer_and_the_reconcile_keep_each_others_fields(api_server: Any) -> None:
    """On a real API server with the project's CRDs: `lastCanary` (the canary's field manager) survives
    the reconcile's status writes, and the reconcile's fields survive the canary's."""
    from kubernetes import client, config

    from memory_operator.controller.kube import STORE, Kube

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(api_server.admin_kubeconfig), client_configuration=configuration)
    kube = Kube(client.ApiClient(configuration))
    api_server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "quality"}})
    body = {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "mem", "namespace": "quality"},
        "spec": {"monitoring": {"canary": {}}},
    }
    path = "/apis/memory-operator.io/v1alpha1/namespaces/quality/memorystores"
    api_server.request("POST", path, body)
    record = quality.canary_record(store(), job("Complete"), [pod(PASSED)], NOW)
    assert record is not None
    await kube.apply_status(STORE, "quality", "mem", {"phase": "Ready"})
    await kube.apply_status(
        STORE, "quality", "mem", {"lastCanary": record.last_canary}, quality.CANARY_MANAGER
    )
    await kube.apply_status(STORE, "quality", "mem", {"phase": "Degraded"})
    got = api_server.get(f"{path}/mem/status")
    assert got is not None
    assert got["status"]["phase"] == "Degraded" and got["status"]["lastCanary"] == record.last_canary
    # The API server refuses a canary on a store of the openmemory flavor.
    refused = {
        **body,
        "metadata": {"name": "om", "namespace": "quality"},
        "spec": {"server": {"flavor": "openmemory"}, "monitoring": {"canary": {}}},
    }
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refusal:
        api_server.request("POST", path, refused)
    assert refusal.value.code == 422 and "builtin server flavor" in refusal.value.read().decode()
