"""MemoryErasures on a real control plane: the erasure Job the operator makes (its subject in a Secret only),
run here against a fake Qdrant; the status, the store's Event and the metric; a store that was down
has its erasure run again with a growing delay; a restore into a new store re-applies the erasure
before its server starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backup.fake_qdrant import FakeQdrant
from e2e.cluster import condition, run_job_command, secret_value, store, wait_for
from e2e.conftest import Cluster
from e2e.test_backup import completed_backup, qdrant_key, server_replicas
from e2e.test_store import create_store, wait_phase, warning_events
from memory_operator import env, labels
from memory_operator.api.store import MemoryStore
from memory_operator.render import names

SUBJECT = "ada-7c1e"
MEMORIES = {
    "1f7a": {"vector": [0.1, 0.2, 0.3, 0.4], "payload": {"data": "likes tea", "user_id": SUBJECT}},
    "2b8c": {"vector": [0.4, 0.3, 0.2, 0.1], "payload": {"data": "lives in Lyon", "user_id": SUBJECT}},
    "3c9d": {"vector": [0.0, 1.0, 0.0, 0.0], "payload": {"data": "allergic to nuts", "user_id": "bob"}},
}
OTHERS = {k: v for k, v in MEMORIES.items() if v["payload"]["user_id"] != SUBJECT}


def memory_erasure(ns: str, name: str, store_name: str, user_id: str = SUBJECT) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryErasure",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"store": store_name, "subject": {"userId": user_id}, "reference": "PRIV-4711"},
    }


def erasure_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    return dict((cluster.client.get("MemoryErasure", ns, name) or {}).get("status") or {})


def wait_erasure(cluster: Cluster, ns: str, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
    return wait_for(
        lambda: (found := erasure_status(cluster, ns, name)).get("phase") == phase and found,
        f"MemoryErasure {name} {phase}",
        timeout,
    )


def events(cluster: Cluster, ns: str, kind: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.client.list("Event", ns)
        if e.get("reason") == reason
        and e.get("involvedObject", {}).get("kind") == kind
        and e.get("involvedObject", {}).get("name") == name
    ]


def erasures_file(cluster: Cluster, ns: str, s: MemoryStore) -> dict[str, Any]:
    secret = cluster.client.get("Secret", ns, names.erasures_secret_name(s)) or {}
    return dict(json.loads(secret_value(secret, "erasures.json")))


def run_erasure_job(cluster: Cluster, ns: str, job: str, qdrant: FakeQdrant, files: Path) -> tuple[int, str]:
    return run_job_command(
        cluster.client,
        cluster.jobs.pod(ns, job),
        files,
        ["--wait-timeout", "10"],
        overrides={env.QDRANT_URL: qdrant.url},
    )


def test_an_erasure_runs_once_reports_and_runs_again_when_the_store_was_down(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.client.namespace("erasure")
    s = create_store(cluster, store(ns, "mem"))
    wait_phase(cluster, ns, "mem", "Ready")
    created = cluster.client.create(memory_erasure(ns, "erase-4711", "mem"))

    job_name = names.erasure_job_name("erase-4711")
    job = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the erasure Job")
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["erase", "--erasure", "erase-4711"]
    assert SUBJECT not in json.dumps(job), "a subject's id is never in a Job"
    assert erasures_file(cluster, ns, s)["erase"] == [{"name": "erase-4711", "subject": {"userId": SUBJECT}}]
    wait_erasure(cluster, ns, "erase-4711", "Running")

    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        qdrant.create_collection("memories", MEMORIES)
        code, message = run_erasure_job(cluster, ns, job_name, qdrant, tmp_path / "first")
        assert code == 0, message
        assert qdrant.points("memories") == OTHERS
    finally:
        qdrant.stop()
    cluster.jobs.finish(ns, job_name, message)
    done = wait_erasure(cluster, ns, "erase-4711", "Completed")
    assert (done["deleted"], done["verified"], done["remaining"]) == (2, True, 0)
    assert condition({"status": done}, "Erased")["reason"] == "Verified"
    stored = wait_for(
        lambda: events(cluster, ns, "MemoryStore", "mem", "MemoriesErased"), "the store's Event"
    )
    assert "MemoryErasure erase-4711" in stored[0]["message"] and "PRIV-4711" in stored[0]["message"]
    assert SUBJECT not in json.dumps(stored) + json.dumps(done), "nor in an Event or a status"
    # Nothing left to run: the Secret no longer names the subject.
    wait_for(lambda: erasures_file(cluster, ns, s) == {"erase": [], "reapply": []}, "the Secret emptied")
    metrics = cluster.operator.metrics()
    assert (
        f'memory_operator_erasures_total{{namespace="{ns}",outcome="completed",store="mem"}} 1.0' in metrics
    )

    # The same subject again, with the store down at first: the run fails as unavailable, the erasure
    # says so and runs again after the delay (30 s for the first attempt).
    cluster.client.create(memory_erasure(ns, "erase-again", "mem"))
    job_name = names.erasure_job_name("erase-again")
    first = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the second erasure Job")
    down = {"phase": "Failed", "reason": "StoreUnavailable", "error": "Qdrant at q did not become ready"}
    cluster.jobs.finish(ns, job_name, down, succeeded=False)
    waiting = wait_for(
        lambda: (
            condition({"status": erasure_status(cluster, ns, "erase-again")}, "Erased").get("reason")
            == "StoreUnavailable"
            and erasure_status(cluster, ns, "erase-again")
        ),
        "StoreUnavailable",
    )
    assert waiting["phase"] == "Running" and waiting["attempts"] == 1
    assert "attempt 2 starts at" in condition({"status": waiting}, "Erased")["message"]
    wait_for(
        lambda: warning_events(cluster, ns, "MemoryErasure", "erase-again", "ErasureRetrying"), "a Warning"
    )
    second = wait_for(
        lambda: (
            (j := cluster.client.get("Job", ns, job_name))
            and j["metadata"]["uid"] != first["metadata"]["uid"]
            and j
        ),
        "the second attempt's Job",
        timeout=90,
    )
    assert second["metadata"]["annotations"][labels.ERASURE_ATTEMPT] == "2"
    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        qdrant.create_collection("memories", OTHERS)
        code, message = run_erasure_job(cluster, ns, job_name, qdrant, tmp_path / "second")
        assert code == 0, message
        assert qdrant.points("memories") == OTHERS
    finally:
        qdrant.stop()
    cluster.jobs.finish(ns, job_name, message)
    again = wait_erasure(cluster, ns, "erase-again", "Completed")
    assert (again["deleted"], again["verified"], again["attempts"]) == (0, True, 2)
    retried = f'memory_operator_erasures_total{{namespace="{ns}",outcome="retried",store="mem"}} 1.0'
    assert retried in cluster.operator.metrics()


def test_a_restore_reapplies_the_erasure_before_the_server_starts(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("erasure-restore")
    completed_backup(cluster, ns, "src", "src-1", tmp_path, MEMORIES)
    # The subject is erased from the source store after the backup was taken.
    cluster.client.create(memory_erasure(ns, "erase-src", "src"))
    job_name = names.erasure_job_name("erase-src")
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the erasure Job")
    erased = {
        "phase": "Completed",
        "erasure": "erase-src",
        "subjectKind": "userId",
        "deleted": 2,
        "remaining": 0,
    }
    cluster.jobs.finish(ns, job_name, erased)
    done = wait_erasure(cluster, ns, "erase-src", "Completed")
    # The backup still holds the subject until the store's retention prunes it (7 nightly backups on).
    assert done["backupsHoldingSubject"] == 1 and done["backupsAgeOutBy"] > done["completionTime"]

    destination = {"pvc": {"claimName": "src-backups"}}
    s = create_store(
        cluster,
        store(ns, "dst", bootstrap={"fromBackup": {"name": "src-1"}}, backup={"destination": destination}),
    )
    restore_job = names.restore_job_name(s)
    job = wait_for(lambda: cluster.client.get("Job", ns, restore_job), "the restore Job")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["erasures"]["secret"]["secretName"] == names.erasures_secret_name(s)
    assert erasures_file(cluster, ns, s)["reapply"] == [{"name": "erase-src", "subject": {"userId": SUBJECT}}]
    held = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", ns, "dst"))
            and condition(b, "ErasuresReapplied").get("reason") == "Reapplying"
            and b
        ),
        "ErasuresReapplied: Reapplying",
    )
    assert "re-applies 1 MemoryErasure(s)" in condition(held, "ErasuresReapplied")["message"]
    assert server_replicas(cluster, ns, s) == 0

    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        code, message = run_job_command(
            cluster.client,
            cluster.jobs.pod(ns, restore_job),
            tmp_path,
            ["--wait-timeout", "10"],
            overrides={env.QDRANT_URL: qdrant.url, env.QDRANT_PEERS: qdrant.url},
        )
        assert code == 0, message
        # The subject's memories are gone from the new store; the others are there.
        assert qdrant.points("memories") == OTHERS
    finally:
        qdrant.stop()
    summary = json.loads(message)
    assert (summary["erasuresReapplied"], summary["erasuresDeleted"], summary["erasures"]) == (
        1,
        2,
        ["erase-src"],
    )
    assert SUBJECT not in message
    cluster.jobs.finish(ns, restore_job, message)
    wait_for(lambda: server_replicas(cluster, ns, s) == 1, "the server released")
    ready = wait_phase(cluster, ns, "dst", "Ready")
    reapplied = condition(ready, "ErasuresReapplied")
    assert (reapplied["status"], reapplied["reason"]) == ("True", "Reapplied")
    assert (
        "re-applied 1 MemoryErasure(s)" in reapplied["message"]
        and "(2 memories deleted)" in reapplied["message"]
    )
    wait_for(lambda: erasures_file(cluster, ns, s) == {"erase": [], "reapply": []}, "the Secret emptied")
