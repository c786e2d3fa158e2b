"""The real `memory-operator run` process against the emulator: convergence, status, policies, deletion."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("memory_operator.render", reason="the renderers are not installed")

from e2e.emulator import Emulator
from e2e.harness import (
    KUBECTL,
    ROOT,
    Client,
    Kubelet,
    OperatorProcess,
    condition,
    start_emulator,
    store,
    wait_for,
)
from memory_operator.api.backup import CollectionSnapshot, MemoryBackupStatus
from memory_operator.api.store import MemoryStore
from memory_operator.backup.main import memory_backup_body
from memory_operator.backup.summary import fit
from memory_operator.controller import outcomes
from memory_operator.expire.summary import ExpirationSummary, RuleSummary
from memory_operator.render import names

pytestmark = pytest.mark.slow


class Cluster:
    def __init__(self, emulator: Emulator, client: Client, operator: OperatorProcess, tmp: Path) -> None:
        self.emulator, self.client, self.operator, self.tmp = emulator, client, operator, tmp
        self.kubelet = Kubelet(client)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    emulator, client = start_emulator()
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(emulator.kubeconfig())
    operator = OperatorProcess(kubeconfig, tmp / "operator.log", resync_seconds=3).start()
    try:
        yield Cluster(emulator, client, operator, tmp)
    finally:
        operator.stop()
        emulator.stop()


def model(body: dict[str, Any]) -> MemoryStore:
    return MemoryStore.model_validate(body)


def create_store(cluster: Cluster, body: dict[str, Any]) -> MemoryStore:
    cluster.client.create(body)
    return model(body)


def make_ready(cluster: Cluster, s: MemoryStore) -> None:
    ns = s.metadata.namespace
    wait_for(
        lambda: cluster.client.get("StatefulSet", ns, names.qdrant_statefulset_name(s)), "the StatefulSet"
    )
    wait_for(lambda: cluster.client.get("Deployment", ns, names.server_deployment_name(s)), "the Deployment")
    cluster.kubelet.ready("StatefulSet", ns, names.qdrant_statefulset_name(s))
    cluster.kubelet.ready("Deployment", ns, names.server_deployment_name(s))


def phase(cluster: Cluster, ns: str, name: str) -> str | None:
    obj = cluster.client.get("MemoryStore", ns, name)
    return ((obj or {}).get("status") or {}).get("phase")


def test_store_gets_children_owned_by_it_and_becomes_ready(cluster: Cluster) -> None:
    s = create_store(cluster, store("basic", "demo"))
    body = wait_for(lambda: cluster.client.get("MemoryStore", "basic", "demo"), "the store")
    sts = wait_for(
        lambda: cluster.client.get("StatefulSet", "basic", names.qdrant_statefulset_name(s)), "sts"
    )
    assert sts["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert sts["metadata"]["ownerReferences"][0]["controller"] is True
    secret = wait_for(lambda: cluster.client.get("Secret", "basic", names.credentials_secret_name(s)), "keys")
    assert secret["data"]
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, "basic", "demo") == "Ready", "phase Ready")
    ready = wait_for(lambda: cluster.client.get("MemoryStore", "basic", "demo"), "the store")
    assert condition(ready, "Ready")["status"] == "True"
    assert ready["status"]["credentialsSecret"] == names.credentials_secret_name(s)
    assert ready["status"]["endpoints"]["server"] == names.server_url(s)
    # Keys are never copied into status or Events.
    values = set(secret["data"].values())
    assert not any(v in str(ready["status"]) for v in values)


def test_converged_store_costs_no_write(cluster: Cluster) -> None:
    s = create_store(cluster, store("quiet", "demo"))
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, "quiet", "demo") == "Ready", "phase Ready")
    start = len(cluster.emulator.writes)
    time.sleep(7)  # two drift-repair periods of the operator
    writes = [w for w in cluster.emulator.writes_since(start) if "/namespaces/quiet/" in w.path and w.changed]
    assert writes == []


def test_deleted_child_is_restored(cluster: Cluster) -> None:
    s = create_store(cluster, store("drift", "demo"))
    name = names.qdrant_service_name(s)
    wait_for(lambda: cluster.client.get("Service", "drift", name), "the Qdrant Service")
    cluster.client.delete("Service", "drift", name)
    wait_for(lambda: cluster.client.get("Service", "drift", name), "the Qdrant Service restored")


def claim_sizes(cluster: Cluster, ns: str) -> dict[str, str]:
    return {
        c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
        for c in cluster.client.list("PersistentVolumeClaim", ns)
    }


def template_sizes(sts: dict[str, Any] | None) -> list[str]:
    templates = (sts or {}).get("spec", {}).get("volumeClaimTemplates") or []
    return [t["spec"]["resources"]["requests"]["storage"] for t in templates]


def test_replicas_and_storage_grow_but_storage_never_shrinks(cluster: Cluster) -> None:
    ns = "resize"
    s = create_store(cluster, store(ns, "demo", vectorStore={"storage": {"size": "10Gi"}}))
    sts_name = names.qdrant_statefulset_name(s)
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, ns, "demo") == "Ready", "phase Ready")
    first = cluster.client.get("StatefulSet", ns, sts_name)
    assert first is not None and list(claim_sizes(cluster, ns).values()) == ["10Gi"]

    cluster.client.patch(
        "MemoryStore", ns, "demo", {"spec": {"vectorStore": {"replicas": 2, "storage": {"size": "20Gi"}}}}
    )
    # The API server refuses new claim templates in place: the StatefulSet is recreated, its claim grown.
    grown = wait_for(
        lambda: (
            (sts := cluster.client.get("StatefulSet", ns, sts_name))
            and template_sizes(sts) == ["20Gi"]
            and sts
        ),
        "the StatefulSet with 20Gi claim templates",
    )
    assert grown["spec"]["replicas"] == 2
    assert grown["metadata"]["uid"] != first["metadata"]["uid"]
    assert len(cluster.client.list("StatefulSet", ns)) == 1
    assert set(claim_sizes(cluster, ns).values()) == {"20Gi"}
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, ns, "demo") == "Ready", "phase Ready with two nodes")
    assert claim_sizes(cluster, ns) == {name: "20Gi" for name in claim_sizes(cluster, ns)}
    assert len(claim_sizes(cluster, ns)) == 2

    cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"storage": {"size": "1Gi"}}}})
    wait_for(lambda: phase(cluster, ns, "demo") == "Failed", "phase Failed")
    failed = cluster.client.get("MemoryStore", ns, "demo")
    assert "StorageShrinkRefused" in condition(failed, "Ready")["message"]
    assert template_sizes(cluster.client.get("StatefulSet", ns, sts_name)) == ["20Gi"]
    assert set(claim_sizes(cluster, ns).values()) == {"20Gi"}
    wait_for(
        lambda: warning_events(cluster, ns, "MemoryStore", "demo", "StorageShrinkRefused"), "a Warning Event"
    )


def test_replication_factor_above_replicas_fails_clearly(cluster: Cluster) -> None:
    create_store(
        cluster, store("rf", "demo", vectorStore={"replicas": 1, "collection": {"replicationFactor": 2}})
    )
    wait_for(lambda: phase(cluster, "rf", "demo") == "Failed", "phase Failed")
    assert cluster.client.list("StatefulSet", "rf") == []


def test_missing_existing_secret(cluster: Cluster) -> None:
    create_store(cluster, store("adopt", "demo", auth={"existingSecret": "mine"}))
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryStore", "adopt", "demo"), "CredentialsReady").get("reason")
            == "SecretNotFound"
        ),
        "CredentialsReady=False",
    )


def test_paused_store(cluster: Cluster) -> None:
    create_store(cluster, store("pause", "demo", paused=True))
    wait_for(lambda: phase(cluster, "pause", "demo") == "Paused", "phase Paused")
    assert cluster.client.list("StatefulSet", "pause") == []


def test_policy_cronjobs_follow_the_policy(cluster: Cluster) -> None:
    a = create_store(cluster, store("pol", "a", {"team": "x"}))
    b = create_store(cluster, store("pol", "b", {"team": "x"}))
    cluster.client.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryPolicy",
            "metadata": {"name": "ttl", "namespace": "pol"},
            "spec": {
                "selector": {"matchLabels": {"team": "x"}},
                "schedule": "0 4 * * *",
                "rules": [{"name": "old", "maxAge": "7d"}],
            },
        }
    )
    for s in (a, b):
        cj = wait_for(
            lambda s=s: cluster.client.get("CronJob", "pol", names.expiration_cronjob_name(s, "ttl")),
            "an expiration CronJob",
        )
        assert cj["spec"]["schedule"] == "0 4 * * *"
    cluster.client.patch("MemoryPolicy", "pol", "ttl", {"spec": {"schedule": "0 5 * * *"}})
    wait_for(
        lambda: (
            (cluster.client.get("CronJob", "pol", names.expiration_cronjob_name(a, "ttl")) or {})
            .get("spec", {})
            .get("schedule")
            == "0 5 * * *"
        ),
        "the new schedule",
    )
    cluster.client.patch("MemoryPolicy", "pol", "ttl", {"spec": {"selector": {"matchLabels": {"team": "y"}}}})
    wait_for(
        lambda: cluster.client.get("CronJob", "pol", names.expiration_cronjob_name(b, "ttl")) is None,
        "the CronJob pruned",
    )


def test_deletion_retains_or_deletes_volumes(cluster: Cluster) -> None:
    for policy in ("Retain", "Delete"):
        ns = f"del-{policy.lower()}"
        body = backup_store(ns)
        body["spec"]["deletionPolicy"] = policy
        s = create_store(cluster, body)
        make_ready(cluster, s)
        wait_for(lambda ns=ns: phase(cluster, ns, "bk") == "Ready", "Ready")
        store_uid = cluster.client.get("MemoryStore", ns, "bk")["metadata"]["uid"]  # type: ignore[index]
        claims = claim_sizes(cluster, ns)
        backup_claim = cluster.client.get("PersistentVolumeClaim", ns, names.backup_claim_name(s))
        assert backup_claim is not None and backup_claim["metadata"]["ownerReferences"][0]["uid"] == store_uid
        assert len(claims) == 2  # Qdrant's volume and the backups'
        cluster.client.delete("MemoryStore", ns, "bk")
        wait_for(lambda ns=ns: cluster.client.get("MemoryStore", ns, "bk") is None, "the store gone")
        wait_for(lambda ns=ns: cluster.client.list("StatefulSet", ns) == [], "the StatefulSet collected")
        for claim_name in claims:
            left = cluster.client.get("PersistentVolumeClaim", ns, claim_name)
            if policy == "Retain":
                assert left is not None, claim_name
                assert left["metadata"]["labels"]["memory-operator.io/retained-from"] == "bk"
                assert not left["metadata"].get("ownerReferences")
            else:
                assert left is None, claim_name


def test_killed_operator_restarts_without_new_keys(cluster: Cluster) -> None:
    s = create_store(cluster, store("restart", "demo"))
    secret = wait_for(
        lambda: cluster.client.get("Secret", "restart", names.credentials_secret_name(s)), "keys"
    )
    cluster.operator.kill()
    cluster.client.patch("MemoryStore", "restart", "demo", {"spec": {"vectorStore": {"replicas": 3}}})
    cluster.operator.start()
    wait_for(
        lambda: (
            (cluster.client.get("StatefulSet", "restart", names.qdrant_statefulset_name(s)) or {})
            .get("spec", {})
            .get("replicas")
            == 3
        ),
        "3 replicas",
    )
    again = cluster.client.get("Secret", "restart", names.credentials_secret_name(s))
    assert again is not None and again["data"] == secret["data"]
    assert len(cluster.client.list("StatefulSet", "restart")) == 1


def test_kubectl_apply_and_get_show_printer_columns(cluster: Cluster) -> None:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing: run scripts/install-tools.sh", pytrace=False)
    example = ROOT / "manifests" / "examples" / "store-minimal.yaml"
    if not example.is_file():
        pytest.fail(f"{example} is missing", pytrace=False)
    kubeconfig = str(cluster.tmp / "kubeconfig")

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [str(KUBECTL), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    namespace = (yaml.safe_load(example.read_text())["metadata"].get("namespace")) or "default"
    kubectl("apply", "-f", str(example))
    out = kubectl("get", "memorystores", "-n", namespace)
    assert out.split("\n")[0].split() == ["NAME", "READY", "PHASE", "REPLICAS", "AGE"]


def warning_events(cluster: Cluster, ns: str, kind: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.client.list("Event", ns)
        if e.get("type") == "Warning"
        and e.get("reason") == reason
        and e.get("involvedObject", {}).get("kind") == kind
        and e.get("involvedObject", {}).get("name") == name
    ]


def test_expiration_results_land_in_policy_and_store_status(cluster: Cluster) -> None:
    s = create_store(cluster, store("expire", "s", {"team": "x"}))
    cluster.client.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryPolicy",
            "metadata": {"name": "ttl", "namespace": "expire"},
            "spec": {"selector": {"matchLabels": {"team": "x"}}, "rules": [{"name": "old", "maxAge": "7d"}]},
        }
    )
    cronjob = names.expiration_cronjob_name(s, "ttl")
    wait_for(lambda: cluster.client.get("CronJob", "expire", cronjob), "the expiration CronJob")

    done = ExpirationSummary(store="s", namespace="expire", collection="memories", duration_seconds=1.5)
    done.add_rule(RuleSummary(name="old", matched=3, deleted=3))
    job = cluster.kubelet.run_cronjob("expire", cronjob, 1)
    cluster.kubelet.finish_job("expire", job, json.loads(done.termination_message()))

    def last_run() -> dict[str, Any] | None:
        policy = cluster.client.get("MemoryPolicy", "expire", "ttl") or {}
        runs = (policy.get("status") or {}).get("lastRuns") or []
        return runs[0] if runs else None

    run = wait_for(lambda: (r := last_run()) and r["deleted"] == 3 and r, "the run in lastRuns")
    assert run["store"] == "s" and run["succeeded"] is True
    assert run["rules"] == [{"name": "old", "matched": 3, "deleted": 3}]
    assert (
        condition(cluster.client.get("MemoryPolicy", "expire", "ttl"), "LastRunSucceeded")["status"] == "True"
    )
    body = wait_for(
        lambda: (
            (b := cluster.client.get("MemoryStore", "expire", "s"))
            and b["status"].get("lastExpiration")
            and b
        ),
        "lastExpiration",
    )
    last = body["status"]["lastExpiration"]
    assert (last["policy"], last["deleted"], last["succeeded"]) == ("ttl", 3, True)
    assert condition(body, "ExpirationSucceeded")["status"] == "True"
    job_body = cluster.client.get("Job", "expire", job)
    assert job_body is not None and job_body["metadata"]["annotations"]["memory-operator.io/result-recorded"]

    failed = ExpirationSummary(store="s", error="Qdrant is unreachable")
    job = cluster.kubelet.run_cronjob("expire", cronjob, 2)
    cluster.kubelet.finish_job("expire", job, json.loads(failed.termination_message()), succeeded=False)
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryPolicy", "expire", "ttl"), "LastRunSucceeded")["status"]
            == "False"
        ),
        "LastRunSucceeded=False",
    )
    run = last_run()
    assert run is not None and run["succeeded"] is False and run["error"] == "Qdrant is unreachable"
    body = cluster.client.get("MemoryStore", "expire", "s")
    assert condition(body, "ExpirationSucceeded")["status"] == "False"
    assert "Qdrant is unreachable" in condition(body, "ExpirationSucceeded")["message"]
    wait_for(lambda: warning_events(cluster, "expire", "MemoryStore", "s", "ExpirationFailed"), "a Warning")


def backup_store(ns: str) -> dict[str, Any]:
    return store(ns, "bk", backup={"schedule": "0 3 * * *", "destination": {"pvc": {"size": "1Gi"}}})


def backup_phase(cluster: Cluster, ns: str, name: str) -> str | None:
    return ((cluster.client.get("MemoryBackup", ns, name) or {}).get("status") or {}).get("phase")


def test_scheduled_and_manual_backups_run_and_report(cluster: Cluster) -> None:
    ns = "backup"
    create_store(cluster, backup_store(ns))
    wait_for(lambda: phase(cluster, ns, "bk"), "the store reconciled")
    # Exactly what the scheduled CronJob (`backup --store bk`) creates, then exits.
    scheduled = memory_backup_body(ns, "bk", "bk-202501010300")
    created = cluster.client.create(scheduled)
    job_name = outcomes.backup_job_name("bk-202501010300")
    job = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the backup Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["backup", "--store", "bk", "--backup", "bk-202501010300"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    wait_for(lambda: backup_phase(cluster, ns, "bk-202501010300") == "Running", "phase Running")

    summary = MemoryBackupStatus(
        phase="Completed",
        start_time="2025-01-01T03:00:05Z",
        stop_time="2025-01-01T03:01:00Z",
        size_bytes=2048,
        location="pvc://bk-backups/bk-202501010300/",
        snapshots=[CollectionSnapshot(collection="memories", name="memories-1.snapshot", size_bytes=2048)],
    ).wire()
    cluster.kubelet.finish_job(ns, job_name, json.loads(fit(summary)))
    wait_for(lambda: backup_phase(cluster, ns, "bk-202501010300") == "Completed", "phase Completed")
    done = cluster.client.get("MemoryBackup", ns, "bk-202501010300")
    assert done is not None
    assert done["status"]["snapshots"] == [
        {"collection": "memories", "name": "memories-1.snapshot", "sizeBytes": 2048}
    ]
    assert done["status"]["location"] == "pvc://bk-backups/bk-202501010300/"
    body = wait_for(
        lambda: (b := cluster.client.get("MemoryStore", ns, "bk")) and b["status"].get("lastBackup") and b,
        "lastBackup",
    )
    assert body["status"]["lastBackup"]["name"] == "bk-202501010300"
    assert body["status"]["lastBackup"]["phase"] == "Completed"
    assert condition(body, "LastBackupSucceeded")["status"] == "True"

    cluster.client.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryBackup",
            "metadata": {"name": "by-hand", "namespace": ns},
            "spec": {"storeRef": {"name": "bk"}},
        }
    )
    job_name = outcomes.backup_job_name("by-hand")
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the manual backup Job")
    cluster.kubelet.finish_job(ns, job_name, {"phase": "Failed", "error": "no space left"}, succeeded=False)
    wait_for(lambda: backup_phase(cluster, ns, "by-hand") == "Failed", "phase Failed")
    failed = cluster.client.get("MemoryBackup", ns, "by-hand")
    assert failed is not None and failed["status"]["error"] == "no space left"
    body = cluster.client.get("MemoryStore", ns, "bk")
    assert condition(body, "LastBackupSucceeded")["status"] == "False"
    assert body is not None and body["status"]["lastBackup"]["name"] == "by-hand"
    wait_for(lambda: warning_events(cluster, ns, "MemoryBackup", "by-hand", "BackupFailed"), "a Warning")
