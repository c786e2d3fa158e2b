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
from e2e.fake_count import FakeCount
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
from memory_operator.controller.counting import QDRANT_URL_TEMPLATE_ENV
from memory_operator.expire.summary import ExpirationSummary, RuleSummary
from memory_operator.render import Credentials, RenderSettings, names, render_store

pytestmark = pytest.mark.slow


class Cluster:
    def __init__(
        self, emulator: Emulator, client: Client, operator: OperatorProcess, tmp: Path, qdrant: FakeCount
    ) -> None:
        self.emulator, self.client, self.operator, self.tmp = emulator, client, operator, tmp
        self.kubelet = Kubelet(client)
        self.qdrant = qdrant


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    emulator, client = start_emulator()
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(emulator.kubeconfig())
    # Qdrant's count endpoint, for every store, where the operator can reach it.
    qdrant = FakeCount().start()
    operator = OperatorProcess(
        kubeconfig,
        tmp / "operator.log",
        resync_seconds=3,
        extra_env={QDRANT_URL_TEMPLATE_ENV: qdrant.template},
    ).start()
    try:
        yield Cluster(emulator, client, operator, tmp, qdrant)
    finally:
        operator.stop()
        emulator.stop()
        qdrant.stop()


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
    s = model(body)
    expected = {
        (m["kind"], m["metadata"]["name"])
        for m in render_store(s, (), RenderSettings(), Credentials.generate())
    }
    selector = "app.kubernetes.io/managed-by=memory-operator,memory-operator.io/store=demo"

    def children() -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (kind, o["metadata"]["name"]): o
            for kind in sorted({kind for kind, _ in expected})
            for o in cluster.client.list(kind, "basic", selector)
        }

    live = wait_for(lambda: (c := children()).keys() == expected and c, "every child")
    for (kind, name), child in live.items():
        refs = child["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
            ("MemoryStore", "demo", body["metadata"]["uid"], True)
        ], f"{kind} {name}"
    secret = live[("Secret", names.credentials_secret_name(s))]
    assert secret["data"]
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, "basic", "demo") == "Ready", "phase Ready")
    ready = wait_for(lambda: cluster.client.get("MemoryStore", "basic", "demo"), "the store")
    assert condition(ready, "Ready")["status"] == "True"
    assert ready["status"]["credentialsSecret"] == names.credentials_secret_name(s)
    assert ready["status"]["endpoints"]["server"] == names.server_url(s)
    assert ready["status"]["readyReplicas"] == "1/1"
    # Keys are never copied into status or Events.
    values = set(secret["data"].values())
    assert not any(v in str(ready["status"]) for v in values)
    assert not any(v in str(cluster.client.list("Event", "basic")) for v in values)


def reconciles(cluster: Cluster) -> float:
    """Successful reconciles so far, from the operator's metrics."""
    for line in cluster.operator.metrics().splitlines():
        if line.startswith('memory_operator_reconciles_total{result="success"}'):
            return float(line.split()[-1])
    return 0.0


def test_converged_store_costs_no_write(cluster: Cluster) -> None:
    s = create_store(cluster, store("quiet", "demo"))
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, "quiet", "demo") == "Ready", "phase Ready")
    time.sleep(1)  # let the events of the last status write come back and be handled
    start, before = len(cluster.emulator.writes), reconciles(cluster)
    time.sleep(7)  # two drift-repair periods of the operator
    writes = [w for w in cluster.emulator.writes_since(start) if "/namespaces/quiet/" in w.path]
    assert writes == []
    assert reconciles(cluster) >= before + 2  # the store was reconciled meanwhile, and wrote nothing


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


def test_immutable_collection_name_is_refused(cluster: Cluster) -> None:
    s = create_store(cluster, store("immutable", "demo"))
    wait_for(
        lambda: (
            "memory-operator.io/applied-immutable-spec"
            in (
                (cluster.client.get("MemoryStore", "immutable", "demo") or {})["metadata"].get("annotations")
                or {}
            )
        ),
        "the applied immutable fields remembered",
    )
    sts_before = cluster.client.get("StatefulSet", "immutable", names.qdrant_statefulset_name(s))
    cluster.client.patch(
        "MemoryStore", "immutable", "demo", {"spec": {"vectorStore": {"collection": {"name": "other"}}}}
    )
    wait_for(lambda: phase(cluster, "immutable", "demo") == "Failed", "phase Failed")
    message = condition(cluster.client.get("MemoryStore", "immutable", "demo"), "Ready")["message"]
    assert "ImmutableFieldChanged" in message and "spec.vectorStore.collection.name" in message
    sts_after = cluster.client.get("StatefulSet", "immutable", names.qdrant_statefulset_name(s))
    assert sts_after is not None and sts_before is not None
    assert sts_after["metadata"]["resourceVersion"] == sts_before["metadata"]["resourceVersion"]
    wait_for(
        lambda: warning_events(cluster, "immutable", "MemoryStore", "demo", "ImmutableFieldChanged"),
        "a Warning",
    )
    cluster.client.patch("MemoryStore", "immutable", "demo", {"spec": {"vectorStore": {"collection": None}}})
    wait_for(lambda: phase(cluster, "immutable", "demo") not in (None, "Failed"), "the store applied again")


def sts_replicas(cluster: Cluster, ns: str, s: MemoryStore) -> int | None:
    sts = cluster.client.get("StatefulSet", ns, names.qdrant_statefulset_name(s))
    return None if sts is None else int(sts["spec"]["replicas"])


def observed(cluster: Cluster, ns: str, name: str) -> bool:
    body = cluster.client.get("MemoryStore", ns, name) or {}
    return (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]


def test_paused_store(cluster: Cluster) -> None:
    create_store(cluster, store("pause", "demo", paused=True))
    wait_for(lambda: phase(cluster, "pause", "demo") == "Paused", "phase Paused")
    assert cluster.client.list("StatefulSet", "pause") == []
    assert cluster.client.list("Secret", "pause") == []

    s = create_store(cluster, store("pause", "annotated"))
    wait_for(lambda: sts_replicas(cluster, "pause", s) == 1, "the StatefulSet")
    cluster.client.patch(
        "MemoryStore",
        "pause",
        "annotated",
        {"metadata": {"annotations": {"memory-operator.io/paused": "true"}}},
    )
    wait_for(lambda: phase(cluster, "pause", "annotated") == "Paused", "phase Paused by annotation")
    cluster.client.patch("MemoryStore", "pause", "annotated", {"spec": {"vectorStore": {"replicas": 3}}})
    wait_for(lambda: observed(cluster, "pause", "annotated"), "the new generation seen while paused")
    assert phase(cluster, "pause", "annotated") == "Paused"
    assert sts_replicas(cluster, "pause", s) == 1
    cluster.client.patch(
        "MemoryStore",
        "pause",
        "annotated",
        {"metadata": {"annotations": {"memory-operator.io/paused": None}}},
    )
    wait_for(lambda: sts_replicas(cluster, "pause", s) == 3, "3 replicas once resumed")


def matched_stores(cluster: Cluster, ns: str, policy: str) -> list[str] | None:
    body = cluster.client.get("MemoryPolicy", ns, policy)
    return None if body is None else list((body.get("status") or {}).get("matchedStores") or [])


def test_policy_cronjobs_follow_the_policy(cluster: Cluster) -> None:
    a = create_store(cluster, store("pol", "a", {"team": "x"}))
    b = create_store(cluster, store("pol", "b", {"team": "x"}))
    spec = {
        "selector": {"matchLabels": {"team": "x"}},
        "schedule": "0 4 * * *",
        "rules": [{"name": "old", "maxAge": "7d"}],
    }
    cluster.client.create(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryPolicy",
            "metadata": {"name": "ttl", "namespace": "pol"},
            "spec": spec,
        }
    )

    def cronjob(s: MemoryStore) -> dict[str, Any] | None:
        return cluster.client.get("CronJob", "pol", names.expiration_cronjob_name(s, "ttl"))

    def schedule(s: MemoryStore) -> str | None:
        return (cronjob(s) or {}).get("spec", {}).get("schedule")

    for s in (a, b):
        cj = wait_for(lambda s=s: cronjob(s), "an expiration CronJob")
        assert cj["spec"]["schedule"] == "0 4 * * *"
        volumes = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
        config_name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
        config = cluster.client.get("ConfigMap", "pol", config_name)
        assert config is not None
        policy_json = json.loads(config["data"]["policy.json"])
        assert policy_json["schedule"] == "0 4 * * *"
        assert policy_json["rules"][0]["name"] == "old" and policy_json["rules"][0]["maxAge"] == "7d"
    wait_for(lambda: matched_stores(cluster, "pol", "ttl") == ["a", "b"], "matchedStores a, b")

    cluster.client.patch("MemoryPolicy", "pol", "ttl", {"spec": {"schedule": "0 5 * * *"}})
    for s in (a, b):
        wait_for(lambda s=s: schedule(s) == "0 5 * * *", "the new schedule")

    # A store relabelled away from the policy loses its CronJob and leaves matchedStores.
    cluster.client.patch("MemoryStore", "pol", "b", {"metadata": {"labels": {"team": "z"}}})
    wait_for(lambda: cronjob(b) is None, "b's CronJob pruned")
    wait_for(lambda: matched_stores(cluster, "pol", "ttl") == ["a"], "matchedStores a")
    assert cronjob(a) is not None

    cluster.client.patch("MemoryPolicy", "pol", "ttl", {"spec": {"selector": {"matchLabels": {"team": "y"}}}})
    wait_for(lambda: cronjob(a) is None, "a's CronJob pruned")
    wait_for(lambda: matched_stores(cluster, "pol", "ttl") == [], "no matched store")

    cluster.client.patch("MemoryPolicy", "pol", "ttl", {"spec": {"selector": {"matchLabels": {"team": "x"}}}})
    wait_for(lambda: cronjob(a) is not None, "a's CronJob back")
    cluster.client.delete("MemoryPolicy", "pol", "ttl")
    wait_for(lambda: cronjob(a) is None, "a's CronJob gone with the policy")
    assert [c for c in cluster.client.list("ConfigMap", "pol") if "ttl" in c["metadata"]["name"]] == []


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


def test_operator_killed_mid_reconcile_converges_without_new_keys(cluster: Cluster) -> None:
    ns = "restart"
    # The reconcile stops, unanswered, at the StatefulSet: the Secret and Services are written by then.
    held = cluster.emulator.hold("PATCH", f"/namespaces/{ns}/statefulsets/")
    try:
        s = create_store(cluster, store(ns, "demo"))
        assert held.arrived.wait(30), "the reconcile never reached the StatefulSet"
        secret = cluster.client.get("Secret", ns, names.credentials_secret_name(s))
        assert secret is not None
        cluster.operator.kill()
    finally:
        cluster.emulator.release(held)
    cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"replicas": 3}}})
    cluster.operator.start()
    wait_for(lambda: sts_replicas(cluster, ns, s) == 3, "3 replicas")
    make_ready(cluster, s)
    wait_for(lambda: phase(cluster, ns, "demo") == "Ready", "phase Ready")
    again = cluster.client.get("Secret", ns, names.credentials_secret_name(s))
    assert again is not None and again["data"] == secret["data"]
    assert again["metadata"]["uid"] == secret["metadata"]["uid"]
    for kind in ("StatefulSet", "Deployment", "Secret", "Service"):
        listed = [o["metadata"]["name"] for o in cluster.client.list(kind, ns)]
        assert len(listed) == len(set(listed)) and listed, kind
    assert len(cluster.client.list("StatefulSet", ns)) == 1


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
    kubectl("apply", "-f", str(example), "-n", namespace)
    name = yaml.safe_load(example.read_text())["metadata"]["name"]
    wait_for(lambda: phase(cluster, namespace, name) == "Provisioning", "the example store provisioning")
    out = kubectl("get", "memorystores", "-n", namespace)
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "PHASE", "REPLICAS", "AGE"]
    assert row.split()[:4] == [name, "False", "Provisioning", "0/1"]


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


def completed_backup(cluster: Cluster, ns: str, source: str, backup_name: str) -> None:
    """A MemoryBackup of store `source` taken the way the operator takes one, then Completed."""
    create_store(cluster, store(ns, source, backup={"destination": {"pvc": {"size": "1Gi"}}}))
    cluster.client.create(memory_backup_body(ns, source, backup_name))
    job_name = outcomes.backup_job_name(backup_name)
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the backup Job")
    summary = MemoryBackupStatus(
        phase="Completed",
        location=f"pvc://{source}-backups/{backup_name}/",
        snapshots=[CollectionSnapshot(collection="memories", name="memories-1.snapshot", size_bytes=10)],
    ).wire()
    cluster.kubelet.finish_job(ns, job_name, summary)
    wait_for(lambda: backup_phase(cluster, ns, backup_name) == "Completed", "the backup Completed")


def server_replicas(cluster: Cluster, ns: str, s: MemoryStore) -> int | None:
    deployment = cluster.client.get("Deployment", ns, names.server_deployment_name(s))
    return None if deployment is None else int(deployment["spec"]["replicas"])


def test_restore_runs_before_the_server_and_only_once(cluster: Cluster) -> None:
    ns = "restore"
    completed_backup(cluster, ns, "src", "src-1")
    s = create_store(cluster, store(ns, "dst", bootstrap={"fromBackup": {"name": "src-1"}}))
    job_name = names.restore_job_name(s)
    job = wait_for(lambda: cluster.client.get("Job", ns, job_name), "the restore Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][-2:] == ["--backup", "src-1"]
    # The server is there but runs nothing while the restore runs, even with Qdrant ready.
    assert wait_for(lambda: server_replicas(cluster, ns, s) == 0, "a held server")
    cluster.kubelet.ready("StatefulSet", ns, names.qdrant_statefulset_name(s))
    cluster.kubelet.ready("Deployment", ns, names.server_deployment_name(s))
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

    cluster.kubelet.finish_job(ns, job_name, {"phase": "Completed", "restored": ["memories"]})
    wait_for(lambda: server_replicas(cluster, ns, s) == 1, "the server released")
    cluster.kubelet.ready("Deployment", ns, names.server_deployment_name(s))
    wait_for(lambda: phase(cluster, ns, "dst") == "Ready", "phase Ready")
    ready = cluster.client.get("MemoryStore", ns, "dst")
    assert ready is not None and ready["status"]["restoredFrom"] == "src-1"
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


def test_failed_restore_fails_the_store_and_keeps_the_server_stopped(cluster: Cluster) -> None:
    ns = "restore-fail"
    completed_backup(cluster, ns, "src", "src-1")
    s = create_store(cluster, store(ns, "bad", bootstrap={"fromBackup": {"name": "src-1"}}))
    job_name = names.restore_job_name(s)
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the restore Job")
    cluster.kubelet.finish_job(
        ns, job_name, {"phase": "Failed", "error": "snapshot checksum mismatch"}, succeeded=False
    )
    wait_for(lambda: phase(cluster, ns, "bad") == "Failed", "phase Failed")
    failed = cluster.client.get("MemoryStore", ns, "bad")
    restored = condition(failed, "Restored")
    assert (restored["status"], restored["reason"]) == ("False", "RestoreFailed")
    assert "snapshot checksum mismatch" in restored["message"]
    events = wait_for(lambda: warning_events(cluster, ns, "MemoryStore", "bad", "RestoreFailed"), "a Warning")
    assert "snapshot checksum mismatch" in events[0]["message"]
    assert server_replicas(cluster, ns, s) == 0
    assert "restoredFrom" not in (failed or {})["status"]


def test_restore_from_a_missing_backup_runs_no_job(cluster: Cluster) -> None:
    ns = "restore-missing"
    s = create_store(cluster, store(ns, "orphan", bootstrap={"fromBackup": {"name": "nowhere"}}))
    wait_for(lambda: phase(cluster, ns, "orphan") == "Failed", "phase Failed")
    body = cluster.client.get("MemoryStore", ns, "orphan")
    assert condition(body, "Restored")["reason"] == "BackupNotFound"
    assert "nowhere" in condition(body, "Ready")["message"]
    wait_for(lambda: warning_events(cluster, ns, "MemoryStore", "orphan", "BackupNotFound"), "a Warning")
    assert cluster.client.get("Job", ns, names.restore_job_name(s)) is None
    assert server_replicas(cluster, ns, s) == 0


def memory_count(cluster: Cluster, ns: str, name: str) -> int | None:
    return ((cluster.client.get("MemoryStore", ns, name) or {}).get("status") or {}).get("memoryCount")


def test_memory_count_follows_qdrant_and_survives_its_failures(cluster: Cluster) -> None:
    import base64

    ns = "count"
    s = create_store(cluster, store(ns, "counted"))
    secret = wait_for(
        lambda: cluster.client.get("Secret", ns, names.qdrant_secret_name(s)), "the Qdrant key Secret"
    )
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    entry = cluster.qdrant.set(ns, "counted", 42, api_key=key)
    wait_for(lambda: phase(cluster, ns, "counted"), "the store reconciled")
    # Not counted before Qdrant is ready.
    assert memory_count(cluster, ns, "counted") is None
    assert entry.requests == []
    make_ready(cluster, s)
    wait_for(lambda: memory_count(cluster, ns, "counted") == 42, "memoryCount 42")
    assert entry.requests[-1] == {"body": {"exact": True}, "api-key": key}

    # Qdrant fails: the last count stays, the store stays Ready, the reconcile goes on.
    cluster.qdrant.set(ns, "counted", None)
    failing_since = len(entry.requests)
    patched = cluster.client.patch("MemoryStore", ns, "counted", {"spec": {"server": {"replicas": 2}}})
    wait_for(
        lambda: (
            (cluster.client.get("MemoryStore", ns, "counted") or {})["status"].get("observedGeneration")
            == patched["metadata"]["generation"]
        ),
        "the new generation observed",
    )
    wait_for(lambda: len(entry.requests) > failing_since, "a failed count")
    assert memory_count(cluster, ns, "counted") == 42
    cluster.kubelet.ready("Deployment", ns, names.server_deployment_name(s))
    wait_for(lambda: phase(cluster, ns, "counted") == "Ready", "still Ready")
    assert memory_count(cluster, ns, "counted") == 42

    # The timer counts again once Qdrant answers.
    cluster.qdrant.set(ns, "counted", 7)
    wait_for(lambda: memory_count(cluster, ns, "counted") == 7, "memoryCount 7")
    assert key not in (cluster.tmp / "operator.log").read_text()
