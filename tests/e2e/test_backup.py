"""Backups and restores on a real control plane: the Jobs the operator makes, their results in status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backup.fake_qdrant import FakeQdrant
from e2e.cluster import condition, run_job_command, secret_value, store, wait_for
from e2e.conftest import Cluster
from e2e.test_store import create_store, phase, wait_phase, warning_events
from memory_operator import env
from memory_operator.api.store import MemoryStore
from memory_operator.render import names


def memory_backup(ns: str, store_name: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "memory-operator.io/v1alpha1",
        "kind": "MemoryBackup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"storeRef": {"name": store_name}},
    }


def backup_store(ns: str) -> dict[str, Any]:
    return store(ns, "bk", backup={"schedule": "0 3 * * *", "destination": {"pvc": {"size": "1Gi"}}})


def backup_phase(cluster: Cluster, ns: str, name: str) -> str | None:
    return ((cluster.client.get("MemoryBackup", ns, name) or {}).get("status") or {}).get("phase")


MEMORIES = {
    "1f7a": {"vector": [0.1, 0.2, 0.3, 0.4], "payload": {"data": "likes tea", "user_id": "ada"}},
    "2b8c": {"vector": [0.4, 0.3, 0.2, 0.1], "payload": {"data": "lives in Lyon", "user_id": "ada"}},
}


def qdrant_key(cluster: Cluster, ns: str, s: MemoryStore) -> str:
    secret = cluster.client.get("Secret", ns, names.qdrant_secret_name(s))
    assert secret is not None
    return secret_value(secret, "api-key")


def test_backups_run_one_at_a_time_and_report(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("backup")
    s = create_store(cluster, backup_store(ns))
    wait_for(lambda: phase(cluster, ns, "bk"), "the store reconciled")
    created = cluster.client.create(memory_backup(ns, "bk", "bk-202501010300"))
    # A second backup waits for the first: one backup of a store at a time.
    cluster.client.create(memory_backup(ns, "bk", "by-hand"))
    job_name = names.backup_job_name("bk-202501010300")
    job = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the backup Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["backup", "--store", "bk", "--backup", "bk-202501010300"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    wait_for(lambda: backup_phase(cluster, ns, "bk-202501010300") == "Running", "phase Running")
    assert backup_phase(cluster, ns, "by-hand") == "Pending"
    assert cluster.client.get("Job", ns, names.backup_job_name("by-hand")) is None

    # The Job's command runs here with its pod's environment, against a Qdrant node holding the
    # store's collection, onto a folder standing in for the backup claim.
    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        qdrant.create_collection("memories", MEMORIES)
        pod = cluster.jobs.pod(ns, job_name)
        code, message = run_job_command(
            cluster.client,
            pod,
            tmp_path / "backup",
            overrides={env.QDRANT_URL: qdrant.url, env.QDRANT_PEERS: qdrant.url},
        )
    finally:
        qdrant.stop()
    assert code == 0, message
    cluster.jobs.finish(ns, job_name, message)
    wait_for(lambda: backup_phase(cluster, ns, "bk-202501010300") == "Completed", "phase Completed")
    done = cluster.client.get("MemoryBackup", ns, "bk-202501010300")
    assert done is not None
    assert [snap["collection"] for snap in done["status"]["snapshots"]] == ["memories"]
    assert done["status"]["location"] == json.loads(message)["location"]
    assert done["status"]["location"].startswith(f"pvc://{names.backup_claim_name(s)}/")
    assert done["status"]["sizeBytes"] > 0
    body = wait_for(
        lambda: (b := cluster.client.get("MemoryStore", ns, "bk")) and b["status"].get("lastBackup") and b,
        "lastBackup",
    )
    # The newest backup is the one waiting; the last one to finish succeeded.
    assert body["status"]["lastBackup"]["name"] == "by-hand"
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryStore", ns, "bk"), "LastBackupSucceeded")["status"] == "True"
        ),
        "LastBackupSucceeded=True",
    )

    job_name = names.backup_job_name("by-hand")
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the manual backup Job")
    cluster.jobs.finish(ns, job_name, {"phase": "Failed", "error": "no space left"}, succeeded=False)
    wait_for(lambda: backup_phase(cluster, ns, "by-hand") == "Failed", "phase Failed")
    failed = cluster.client.get("MemoryBackup", ns, "by-hand")
    assert failed is not None and failed["status"]["error"] == "no space left"
    body = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", ns, "bk"))
            and b["status"]["lastBackup"]["name"] == "by-hand"
            and b
        ),
        "lastBackup by-hand",
    )
    assert condition(body, "LastBackupSucceeded")["status"] == "False"
    wait_for(lambda: warning_events(cluster, ns, "MemoryBackup", "by-hand", "BackupFailed"), "a Warning")


def completed_backup(
    cluster: Cluster,
    ns: str,
    source: str,
    backup_name: str,
    files: Path,
    memories: dict[str, Any] = MEMORIES,
) -> None:
    """A MemoryBackup of store `source` holding `memories`, taken for real by its Job's command onto a
    folder standing in for the store's backup claim (under `files`), then Completed."""
    s = create_store(cluster, store(ns, source, backup={"destination": {"pvc": {"size": "1Gi"}}}))
    cluster.client.create(memory_backup(ns, source, backup_name))
    job_name = names.backup_job_name(backup_name)
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the backup Job")
    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        qdrant.create_collection("memories", memories)
        code, message = run_job_command(
            cluster.client,
            cluster.jobs.pod(ns, job_name),
            files,
            overrides={env.QDRANT_URL: qdrant.url, env.QDRANT_PEERS: qdrant.url},
        )
    finally:
        qdrant.stop()
    assert code == 0, message
    cluster.jobs.finish(ns, job_name, message)
    wait_for(lambda: backup_phase(cluster, ns, backup_name) == "Completed", "the backup Completed")


def server_replicas(cluster: Cluster, ns: str, s: MemoryStore) -> int | None:
    deployment = cluster.client.get("Deployment", ns, names.server_deployment_name(s))
    return None if deployment is None else int(deployment["spec"]["replicas"])


def test_restore_runs_before_the_server_and_only_once(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("restore")
    completed_backup(cluster, ns, "src", "src-1", tmp_path)
    # A new store reading the backups of `src` from its claim.
    destination = {"pvc": {"claimName": "src-backups"}}
    s = create_store(
        cluster,
        store(ns, "dst", bootstrap={"fromBackup": {"name": "src-1"}}, backup={"destination": destination}),
    )
    job_name = names.restore_job_name(s)
    job = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the restore Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--backup", "src-1"]
    # The server is there but runs nothing while the restore runs, even with Qdrant ready.
    assert wait_for(lambda: server_replicas(cluster, ns, s) == 0, "a held server")
    held = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", ns, "dst"))
            and condition(b, "Restored").get("reason") == "RestoreRunning"
            and condition(b, "VectorStoreReady").get("status") == "True"
            and b
        ),
        "RestoreRunning",
    )
    assert held["status"]["phase"] == "Provisioning"
    assert condition(held, "Ready")["reason"] == "RestoreRunning"
    assert "restoredFrom" not in held["status"]

    # The restore Job's command runs here with its pod's environment, into the new store's Qdrant.
    qdrant = FakeQdrant(api_key=qdrant_key(cluster, ns, s)).start()
    try:
        code, message = run_job_command(
            cluster.client,
            cluster.jobs.pod(ns, job_name),
            tmp_path,
            ["--wait-timeout", "10"],
            overrides={env.QDRANT_URL: qdrant.url, env.QDRANT_PEERS: qdrant.url},
        )
        assert code == 0, message
        assert set(qdrant.points("memories") or {}) == set(MEMORIES)
    finally:
        qdrant.stop()
    cluster.jobs.finish(ns, job_name, message)
    wait_for(lambda: server_replicas(cluster, ns, s) == 1, "the server released")
    ready = wait_phase(cluster, ns, "dst", "Ready")
    assert ready["status"]["restoredFrom"] == "src-1"
    assert condition(ready, "Restored")["status"] == "True"

    # Deleting the finished Job never restores again on top of live data.
    assert cluster.client.delete("Job", ns, job_name) == 200
    # A spec change after the deletion: once it is observed, a whole reconcile has seen no Job.
    patched = cluster.client.patch("MemoryStore", ns, "dst", {"spec": {"server": {"replicas": 2}}})
    generation = patched["metadata"]["generation"]
    wait_for(lambda: server_replicas(cluster, ns, s) == 2, "the new replica count")
    wait_for(
        lambda: (
            (cluster.client.get("MemoryStore", ns, "dst") or {})["status"].get("observedGeneration")
            == generation
        ),
        "the new generation observed",
    )
    assert cluster.client.get("Job", ns, job_name) is None
    assert condition(cluster.client.get("MemoryStore", ns, "dst"), "Restored")["status"] == "True"


def test_failed_restore_fails_the_store_and_keeps_the_server_stopped(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = cluster.client.namespace("restore-fail")
    completed_backup(cluster, ns, "src", "src-1", tmp_path)
    s = create_store(cluster, store(ns, "bad", bootstrap={"fromBackup": {"name": "src-1"}}))
    job_name = names.restore_job_name(s)
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the restore Job")
    cluster.jobs.finish(
        ns, job_name, {"phase": "Failed", "error": "snapshot checksum mismatch"}, succeeded=False
    )
    failed = wait_phase(cluster, ns, "bad", "Failed")
    restored = condition(failed, "Restored")
    assert (restored["status"], restored["reason"]) == ("False", "RestoreFailed")
    assert "snapshot checksum mismatch" in restored["message"]
    events = wait_for(lambda: warning_events(cluster, ns, "MemoryStore", "bad", "RestoreFailed"), "a Warning")
    assert "snapshot checksum mismatch" in events[0]["message"]
    assert server_replicas(cluster, ns, s) == 0
    assert "restoredFrom" not in failed["status"]


def test_restore_from_a_missing_backup_runs_no_job(cluster: Cluster) -> None:
    ns = cluster.client.namespace("restore-missing")
    s = create_store(cluster, store(ns, "orphan", bootstrap={"fromBackup": {"name": "nowhere"}}))
    body = wait_phase(cluster, ns, "orphan", "Failed")
    assert condition(body, "Restored")["reason"] == "BackupNotFound"
    assert "nowhere" in condition(body, "Ready")["message"]
    wait_for(lambda: warning_events(cluster, ns, "MemoryStore", "orphan", "BackupNotFound"), "a Warning")
    assert cluster.client.get("Job", ns, names.restore_job_name(s)) is None
    assert server_replicas(cluster, ns, s) == 0


def test_the_operator_takes_scheduled_backups(cluster: Cluster) -> None:
    ns = cluster.client.namespace("schedule")
    every_minute = {"schedule": "* * * * *", "destination": {"pvc": {"size": "1Gi"}}}
    create_store(cluster, store(ns, "cron", backup=every_minute))

    def scheduled() -> list[dict[str, Any]]:
        return [
            b
            for b in cluster.client.list("MemoryBackup", ns)
            if b["metadata"]["labels"].get("memory-operator.io/scheduled") == "true"
        ]

    first = wait_for(lambda: scheduled(), "a scheduled MemoryBackup", timeout=120)[0]
    name = first["metadata"]["name"]
    assert name.startswith("cron-") and first["spec"] == {"storeRef": {"name": "cron"}}
    job = wait_for(lambda: cluster.client.get("Job", ns, names.backup_job_name(name)), "its Job")
    assert job["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
    # While it runs, no later tick starts another one.
    cluster.client.patch("MemoryStore", ns, "cron", {"spec": {"backup": {"suspend": True}}})
    assert len(scheduled()) == 1


def test_a_failed_restore_runs_again_on_request(cluster: Cluster, tmp_path: Path) -> None:
    ns = cluster.client.namespace("restore-retry")
    completed_backup(cluster, ns, "src", "src-1", tmp_path)
    s = create_store(cluster, store(ns, "again", bootstrap={"fromBackup": {"name": "src-1"}}))
    job_name = names.restore_job_name(s)
    first = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the restore Job")
    cluster.jobs.finish(ns, job_name, {"phase": "Failed", "error": "Qdrant was down"}, succeeded=False)
    failed = wait_phase(cluster, ns, "again", "Failed")
    assert "memory-operator.io/retry-restore" in condition(failed, "Restored")["message"]

    cluster.client.patch(
        "MemoryStore", ns, "again", {"metadata": {"annotations": {"memory-operator.io/retry-restore": "1"}}}
    )
    second = wait_for(
        lambda: (
            (j := cluster.client.get("Job", ns, job_name))
            and j["metadata"]["uid"] != first["metadata"]["uid"]
            and j
        ),
        "a new restore Job",
    )
    assert second["metadata"]["annotations"]["memory-operator.io/restore-attempt"] == "1"
    cluster.jobs.finish(ns, job_name, {"phase": "Completed", "restored": ["memories"]})
    ready = wait_phase(cluster, ns, "again", "Ready")
    assert ready["status"]["restoredFrom"] == "src-1"
