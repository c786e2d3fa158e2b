"""MemoryPolicy on a real control plane: CronJobs per selected store, and expiration results in status."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from e2e.cluster import InPod, condition, run_job_command, store, wait_for
from e2e.conftest import Cluster
from e2e.test_store import create_store, warning_events
from memory_operator import env
from memory_operator.api.jobs import ExpirationSummary
from memory_operator.api.store import MemoryStore
from memory_operator.render import names


def policy(ns: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def matched_stores(cluster: Cluster, ns: str, name: str) -> list[str] | None:
    body = cluster.client.get("MemoryPolicy", ns, name)
    return None if body is None else list((body.get("status") or {}).get("matchedStores") or [])


def test_policy_cronjobs_follow_the_policy(cluster: Cluster) -> None:
    ns = cluster.client.namespace("pol")
    a = create_store(cluster, store(ns, "a", {"team": "x"}))
    b = create_store(cluster, store(ns, "b", {"team": "x"}))
    cluster.client.create(
        policy(
            ns,
            "ttl",
            selector={"matchLabels": {"team": "x"}},
            schedule="0 4 * * *",
            rules=[{"name": "old", "maxAge": "7d"}],
        )
    )

    def cronjob(s: MemoryStore) -> dict[str, Any] | None:
        return cluster.client.get("CronJob", ns, names.expiration_cronjob_name(s, "ttl"))

    def schedule(s: MemoryStore) -> str | None:
        return (cronjob(s) or {}).get("spec", {}).get("schedule")

    for s in (a, b):
        cj = wait_for(lambda s=s: cronjob(s), "an expiration CronJob")
        assert cj["spec"]["schedule"] == "0 4 * * *"
        volumes = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
        config_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
        config = cluster.client.get("ConfigMap", ns, config_name)
        assert config is not None
        policy_json = json.loads(config["data"]["policy.json"])
        assert policy_json["schedule"] == "0 4 * * *"
        assert policy_json["rules"][0]["name"] == "old" and policy_json["rules"][0]["maxAge"] == "7d"
    wait_for(lambda: matched_stores(cluster, ns, "ttl") == ["a", "b"], "matchedStores a, b")

    cluster.client.patch("MemoryPolicy", ns, "ttl", {"spec": {"schedule": "0 5 * * *"}})
    for s in (a, b):
        wait_for(lambda s=s: schedule(s) == "0 5 * * *", "the new schedule")

    # A store relabelled away from the policy loses its CronJob and leaves matchedStores.
    cluster.client.patch("MemoryStore", ns, "b", {"metadata": {"labels": {"team": "z"}}})
    wait_for(lambda: cronjob(b) is None, "b's CronJob pruned")
    wait_for(lambda: matched_stores(cluster, ns, "ttl") == ["a"], "matchedStores a")
    assert cronjob(a) is not None

    cluster.client.patch("MemoryPolicy", ns, "ttl", {"spec": {"selector": {"matchLabels": {"team": "y"}}}})
    wait_for(lambda: cronjob(a) is None, "a's CronJob pruned")
    wait_for(lambda: matched_stores(cluster, ns, "ttl") == [], "no matched store")

    cluster.client.patch("MemoryPolicy", ns, "ttl", {"spec": {"selector": {"matchLabels": {"team": "x"}}}})
    wait_for(lambda: cronjob(a) is not None, "a's CronJob back")
    cluster.client.delete("MemoryPolicy", ns, "ttl")
    wait_for(lambda: cronjob(a) is None, "a's CronJob gone with the policy")
    assert [c for c in cluster.client.list("ConfigMap", ns) if "ttl" in c["metadata"]["name"]] == []


def seeded_qdrant(path: Path) -> None:
    """A local Qdrant with the store's collection: two memories 30 days old, one from today."""
    client = QdrantClient(path=str(path))
    client.create_collection(
        "memories", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    now = dt.datetime.now(dt.UTC)
    points = [
        models.PointStruct(
            id=i,
            vector=[0.1 * (i + 1), 0.2, 0.3, 0.4],
            payload={
                "data": f"memory {i}",
                "user_id": "alice",
                "created_at": (now - dt.timedelta(days=age)).isoformat(),
                "updated_at": (now - dt.timedelta(days=age)).isoformat(),
            },
        )
        for i, age in enumerate((30, 30, 0))
    ]
    client.upsert("memories", points)
    client.close()


def test_expiration_runs_from_its_cronjob_and_lands_in_status(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("expire")
    s = create_store(cluster, store(ns, "s", {"team": "x"}))
    cluster.client.create(
        policy(ns, "ttl", selector={"matchLabels": {"team": "x"}}, rules=[{"name": "old", "maxAge": "7d"}])
    )
    cronjob = names.expiration_cronjob_name(s, "ttl")
    wait_for(lambda: cluster.client.get("CronJob", ns, cronjob), "the expiration CronJob")

    # The Job the CronJob makes runs here, with its pod's environment, on a local Qdrant.
    job = cluster.jobs.from_cronjob(ns, cronjob, "ttl-manual-1")
    pod = cluster.jobs.pod(ns, job)
    qdrant = tmp_path / "qdrant"
    seeded_qdrant(qdrant)
    code, message = run_job_command(
        cluster.client,
        pod,
        tmp_path / "run-1",
        ["--qdrant-path", str(qdrant), "--policy-file", InPod(env.POLICY_PATH)],
        {},
    )
    assert code == 0, message
    cluster.jobs.finish(ns, job, message)

    def last_run() -> dict[str, Any] | None:
        body = cluster.client.get("MemoryPolicy", ns, "ttl") or {}
        runs = (body.get("status") or {}).get("lastRuns") or []
        return runs[0] if runs else None

    assert json.loads(message)["deleted"] == 2, message
    run = wait_for(lambda: (r := last_run()) and r.get("deleted") == 2 and r, "the run in lastRuns")
    assert run["store"] == "s" and run["succeeded"] is True
    assert {"name": "old", "matched": 2, "deleted": 2} in run["rules"]
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryPolicy", ns, "ttl"), "LastRunSucceeded")["status"] == "True"
        ),
        "LastRunSucceeded=True",
    )
    body = wait_for(
        lambda: (b := cluster.client.get("MemoryStore", ns, "s")) and b["status"].get("lastExpiration") and b,
        "lastExpiration",
    )
    last = body["status"]["lastExpiration"]
    assert (last["policy"], last["deleted"], last["succeeded"]) == ("ttl", 2, True)
    assert condition(body, "ExpirationSucceeded")["status"] == "True"
    cluster.jobs.wait_finished(ns, job)

    # A run that fails (exit code 1, its summary says why) fails its Job at once, and says so.
    failed = ExpirationSummary(store="s", error="Qdrant is unreachable")
    job = cluster.jobs.from_cronjob(ns, cronjob, "ttl-manual-2")
    cluster.jobs.finish(ns, job, failed.termination_message(), succeeded=False)
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryPolicy", ns, "ttl"), "LastRunSucceeded")["status"] == "False"
        ),
        "LastRunSucceeded=False",
    )
    run = last_run()
    assert run is not None and run["succeeded"] is False and run["error"] == "Qdrant is unreachable"
    # The store's reconcile (another writer) says so too, once it has seen the policy's run.
    body = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", ns, "s"))
            and condition(b, "ExpirationSucceeded")["status"] == "False"
            and b
        ),
        "ExpirationSucceeded=False",
    )
    assert "Qdrant is unreachable" in condition(body, "ExpirationSucceeded")["message"]
    wait_for(lambda: warning_events(cluster, ns, "MemoryStore", "s", "ExpirationFailed"), "a Warning")
