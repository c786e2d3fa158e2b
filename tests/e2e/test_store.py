"""A MemoryStore on a real control plane: children, readiness, status, drift, growth, pause."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from e2e.cluster import ApiError, audit_requests, audit_writes, condition, store, wait_for
from e2e.conftest import Cluster
from memory_operator.api.store import MemoryStore
from memory_operator.render import Credentials, Directives, RenderSettings, names, render_store


def model(body: dict[str, Any]) -> MemoryStore:
    return MemoryStore.model_validate(body)


def create_store(cluster: Cluster, body: dict[str, Any]) -> MemoryStore:
    cluster.client.create(body)
    return model(body)


def phase(cluster: Cluster, ns: str, name: str) -> str | None:
    obj = cluster.client.get("MemoryStore", ns, name)
    return ((obj or {}).get("status") or {}).get("phase")


def wait_phase(cluster: Cluster, ns: str, name: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        body = cluster.client.get("MemoryStore", ns, name) or {}
        seen["status"] = body.get("status")
        return body if (body.get("status") or {}).get("phase") == wanted else None

    try:
        return wait_for(reached, f"{ns}/{name} phase {wanted}", timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}\nthe store's status: {seen.get('status')}") from None


def warning_events(cluster: Cluster, ns: str, kind: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.client.list("Event", ns)
        if e.get("type") == "Warning"
        and e.get("reason") == reason
        and e.get("involvedObject", {}).get("kind") == kind
        and e.get("involvedObject", {}).get("name") == name
    ]


def test_store_gets_children_owned_by_it_and_becomes_ready(cluster: Cluster) -> None:
    ns = cluster.client.namespace("basic")
    create_store(cluster, store(ns, "demo"))
    body = wait_for(lambda: cluster.client.get("MemoryStore", ns, "demo"), "the store")
    s = model(body)
    expected = {
        (m["kind"], m["metadata"]["name"])
        for m in render_store(s, (), RenderSettings(), Credentials.generate(), Directives(collection=True))
    }
    selector = "app.kubernetes.io/managed-by=memory-operator,memory-operator.io/store=demo"

    def children() -> dict[tuple[str, str], dict[str, Any]]:
        return {
            (kind, o["metadata"]["name"]): o
            for kind in sorted({kind for kind, _ in expected})
            for o in cluster.client.list(kind, ns, selector)
        }

    live = wait_for(lambda: (c := children()).keys() == expected and c, "every child")
    for (kind, name), child in live.items():
        refs = child["metadata"].get("ownerReferences") or []
        assert [(r["kind"], r["name"], r["uid"], r.get("controller")) for r in refs] == [
            ("MemoryStore", "demo", body["metadata"]["uid"], True)
        ], f"{kind} {name}"
    secret = live[("Secret", names.credentials_secret_name(s))]
    assert secret["data"]
    # The fake node runs the pods: the restricted Pod Security Standard admitted every one of them.
    ready = wait_phase(cluster, ns, "demo", "Ready")
    assert condition(ready, "Ready")["status"] == "True"
    assert ready["status"]["credentialsSecret"] == names.credentials_secret_name(s)
    assert ready["status"]["endpoints"]["server"] == names.server_url(s)
    assert ready["status"]["readyReplicas"] == "1/1"
    assert ready["status"]["observedGeneration"] == ready["metadata"]["generation"]
    pods = cluster.client.list("Pod", ns)
    assert {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods} >= {
        "vector-store",
        "server",
    }
    # The collection Job's pod has finished; Qdrant's and the server's run.
    serving = [p for p in pods if "batch.kubernetes.io/job-name" not in p["metadata"]["labels"]]
    assert serving and all(p["status"]["phase"] == "Running" for p in serving)
    # Keys are never copied into status or Events.
    values = set(secret["data"].values())
    assert not any(v in str(ready["status"]) for v in values)
    assert not any(v in str(cluster.client.list("Event", ns)) for v in values)


def reconciles(cluster: Cluster) -> float:
    """Successful reconciles so far, from the operator's metrics."""
    for line in cluster.operator.metrics().splitlines():
        if line.startswith('memory_operator_reconciles_total{result="success"}'):
            return float(line.split()[-1])
    return 0.0


def test_converged_store_costs_no_write(cluster: Cluster) -> None:
    ns = cluster.client.namespace("quiet")
    create_store(cluster, store(ns, "demo"))
    wait_phase(cluster, ns, "demo", "Ready")
    time.sleep(2)  # let the events of the last status write come back and be handled
    since, before = time.time(), reconciles(cluster)
    time.sleep(7)  # two drift-repair periods of the operator
    writes = audit_writes(cluster.plane, ns, since)
    assert writes == [], [(e["requestURI"], e.get("requestObject")) for e in writes]
    # It read nothing either: a reconcile reads the operator's watch cache.
    reads = audit_requests(cluster.plane, ns, since, verbs=("get", "list"))
    assert reads == [], [(e["verb"], e["requestURI"]) for e in reads]
    assert reconciles(cluster) >= before + 2  # the store was reconciled meanwhile, and wrote nothing


def test_deleted_or_edited_child_is_restored(cluster: Cluster) -> None:
    ns = cluster.client.namespace("drift")
    s = create_store(cluster, store(ns, "demo"))
    wait_phase(cluster, ns, "demo", "Ready")
    service = names.qdrant_service_name(s)
    assert cluster.client.delete("Service", ns, service) == 200
    wait_for(lambda: cluster.client.get("Service", ns, service), "the Qdrant Service restored")

    deployment = names.server_deployment_name(s)
    cluster.client.patch("Deployment", ns, deployment, {"spec": {"replicas": 5}})
    wait_for(
        lambda: (cluster.client.get("Deployment", ns, deployment) or {})["spec"]["replicas"] == 1,
        "the server's replicas set back",
    )


def claim_sizes(cluster: Cluster, ns: str) -> dict[str, str]:
    return {
        c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
        for c in cluster.client.list("PersistentVolumeClaim", ns)
    }


def template_sizes(sts: dict[str, Any] | None) -> list[str]:
    templates = (sts or {}).get("spec", {}).get("volumeClaimTemplates") or []
    return [t["spec"]["resources"]["requests"]["storage"] for t in templates]


def test_replicas_and_storage_grow_but_storage_never_shrinks(cluster: Cluster) -> None:
    ns = cluster.client.namespace("resize")
    s = create_store(cluster, store(ns, "demo", vectorStore={"storage": {"size": "10Gi"}}))
    sts_name = names.qdrant_statefulset_name(s)
    wait_phase(cluster, ns, "demo", "Ready")
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
    wait_phase(cluster, ns, "demo", "Ready")
    wait_for(lambda: set(claim_sizes(cluster, ns).values()) == {"20Gi"}, "every claim 20Gi")
    assert len(claim_sizes(cluster, ns)) == 2

    cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"vectorStore": {"storage": {"size": "1Gi"}}}})
    failed = wait_phase(cluster, ns, "demo", "Failed")
    assert "StorageShrinkRefused" in condition(failed, "Ready")["message"]
    assert template_sizes(cluster.client.get("StatefulSet", ns, sts_name)) == ["20Gi"]
    assert set(claim_sizes(cluster, ns).values()) == {"20Gi"}
    wait_for(
        lambda: warning_events(cluster, ns, "MemoryStore", "demo", "StorageShrinkRefused"), "a Warning Event"
    )


def test_children_no_longer_rendered_are_pruned(cluster: Cluster) -> None:
    ns = cluster.client.namespace("prune")
    s = create_store(cluster, store(ns, "demo", vectorStore={"replicas": 3}, server={"replicas": 2}))
    budgets = {names.qdrant_disruption_budget_name(s), names.server_disruption_budget_name(s)}
    wait_for(
        lambda: {b["metadata"]["name"] for b in cluster.client.list("PodDisruptionBudget", ns)} == budgets,
        "both disruption budgets",
    )
    # Each change lands on a settled store: the StatefulSet controller of Kubernetes 1.34 can count -1
    # current replicas when a new revision and a scale-down meet pods still starting, and then never
    # writes its status again.
    wait_phase(cluster, ns, "demo", "Ready")
    cluster.client.patch(
        "MemoryStore", ns, "demo", {"spec": {"vectorStore": {"replicas": 1}, "server": {"replicas": 1}}}
    )
    wait_for(lambda: cluster.client.list("PodDisruptionBudget", ns) == [], "the budgets pruned")
    wait_phase(cluster, ns, "demo", "Ready")
    # The openmemory flavor has a NetworkPolicy of its own, which goes with it.
    cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"server": {"flavor": "openmemory"}}})
    policy = names.server_network_policy_name(s)
    wait_for(lambda: cluster.client.get("NetworkPolicy", ns, policy), "the server's NetworkPolicy")
    cluster.client.patch("MemoryStore", ns, "demo", {"spec": {"server": {"flavor": "builtin"}}})
    wait_for(lambda: cluster.client.get("NetworkPolicy", ns, policy) is None, "the NetworkPolicy pruned")
    wait_phase(cluster, ns, "demo", "Ready")


def test_replication_factor_above_replicas_fails_clearly(cluster: Cluster) -> None:
    ns = cluster.client.namespace("rf")
    create_store(
        cluster, store(ns, "demo", vectorStore={"replicas": 1, "collection": {"replicationFactor": 2}})
    )
    wait_phase(cluster, ns, "demo", "Failed")
    assert cluster.client.list("StatefulSet", ns) == []


def test_missing_existing_secret(cluster: Cluster) -> None:
    ns = cluster.client.namespace("adopt")
    create_store(cluster, store(ns, "demo", auth={"existingSecret": "mine"}))
    wait_for(
        lambda: (
            condition(cluster.client.get("MemoryStore", ns, "demo"), "CredentialsReady").get("reason")
            == "SecretNotFound"
        ),
        "CredentialsReady=False",
    )


def test_immutable_collection_name_is_refused_by_the_api_server(cluster: Cluster) -> None:
    ns = cluster.client.namespace("immutable")
    create_store(cluster, store(ns, "demo", vectorStore={"collection": {"name": "memories"}}))
    try:
        cluster.client.patch(
            "MemoryStore", ns, "demo", {"spec": {"vectorStore": {"collection": {"name": "other"}}}}
        )
    except ApiError as error:
        assert error.code == 422 and "name is immutable" in error.message, error.message
    else:
        raise AssertionError("the API server accepted a new collection name")


def sts_replicas(cluster: Cluster, ns: str, s: MemoryStore) -> int | None:
    sts = cluster.client.get("StatefulSet", ns, names.qdrant_statefulset_name(s))
    return None if sts is None else int(sts["spec"]["replicas"])


def observed(cluster: Cluster, ns: str, name: str) -> bool:
    body = cluster.client.get("MemoryStore", ns, name) or {}
    return (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]


def test_paused_store(cluster: Cluster) -> None:
    ns = cluster.client.namespace("pause")
    create_store(cluster, store(ns, "demo", paused=True))
    wait_phase(cluster, ns, "demo", "Paused")
    assert cluster.client.list("StatefulSet", ns) == []
    assert [
        s for s in cluster.client.list("Secret", ns) if s["type"] != "kubernetes.io/service-account-token"
    ] == []

    s = create_store(cluster, store(ns, "annotated"))
    wait_for(lambda: sts_replicas(cluster, ns, s) == 1, "the StatefulSet")
    cluster.client.patch(
        "MemoryStore", ns, "annotated", {"metadata": {"annotations": {"memory-operator.io/paused": "true"}}}
    )
    wait_phase(cluster, ns, "annotated", "Paused")
    cluster.client.patch("MemoryStore", ns, "annotated", {"spec": {"vectorStore": {"replicas": 3}}})
    wait_for(lambda: observed(cluster, ns, "annotated"), "the new generation seen while paused")
    assert phase(cluster, ns, "annotated") == "Paused"
    assert sts_replicas(cluster, ns, s) == 1
    cluster.client.patch(
        "MemoryStore", ns, "annotated", {"metadata": {"annotations": {"memory-operator.io/paused": None}}}
    )
    wait_for(lambda: sts_replicas(cluster, ns, s) == 3, "3 replicas once resumed")
    wait_phase(cluster, ns, "annotated", "Ready")


def memory_count(cluster: Cluster, ns: str, name: str) -> int | None:
    return ((cluster.client.get("MemoryStore", ns, name) or {}).get("status") or {}).get("memoryCount")


def test_memory_count_follows_qdrant_and_survives_its_failures(cluster: Cluster) -> None:
    import base64

    ns = cluster.client.namespace("count")
    # Not counted before Qdrant is ready: the store starts in a namespace whose quota admits no pod.
    cluster.client.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods", "namespace": ns},
            "spec": {"hard": {"pods": "0"}},
        }
    )
    s = create_store(cluster, store(ns, "counted"))
    secret = wait_for(lambda: cluster.client.get("Secret", ns, names.qdrant_secret_name(s)), "the Qdrant key")
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    entry = cluster.qdrant.set(ns, "counted", 42, api_key=key)
    wait_for(lambda: phase(cluster, ns, "counted"), "the store reconciled")
    time.sleep(1)
    assert memory_count(cluster, ns, "counted") is None
    assert entry.requests == []
    assert cluster.client.delete("ResourceQuota", ns, "no-pods") == 200
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
    wait_phase(cluster, ns, "counted", "Ready")
    assert memory_count(cluster, ns, "counted") == 42

    # The timer counts again once Qdrant answers.
    cluster.qdrant.set(ns, "counted", 7)
    wait_for(lambda: memory_count(cluster, ns, "counted") == 7, "memoryCount 7")
    assert key not in cluster.plane.log_tail("operator", 10**8)


def test_the_collection_is_made_as_specified_before_the_server_serves(
    cluster: Cluster, tmp_path: Path
) -> None:
    from backup.fake_qdrant import FakeQdrant
    from e2e.cluster import run_job_command, secret_value
    from memory_operator import env
    from memory_operator.render import collection

    ns = cluster.client.namespace("collection", manual_collection=True)
    spec = {"collection": {"shardNumber": 2, "replicationFactor": 1, "onDisk": True}}
    s = create_store(cluster, store(ns, "made", vectorStore=spec))
    job_name = collection.job_name(s)
    wait_for(lambda: cluster.client.get("Job", ns, job_name), "the collection Job")
    deployment = wait_for(
        lambda: cluster.client.get("Deployment", ns, names.server_deployment_name(s)), "the server"
    )
    assert deployment["spec"]["replicas"] == 0, "the server waits for its collection"

    # The Job's command runs here with its pod's environment, against a Qdrant node.
    secret = cluster.client.get("Secret", ns, names.qdrant_secret_name(s))
    assert secret is not None
    node = FakeQdrant(api_key=secret_value(secret, "api-key")).start()
    try:
        code, message = run_job_command(
            cluster.client,
            cluster.jobs.pod(ns, job_name),
            tmp_path,
            ["--wait-timeout", "10"],
            overrides={env.QDRANT_URL: node.url, env.QDRANT_PEERS: node.url},
        )
        assert code == 0, message
        params = node.cluster.collections["memories"].params
        assert (params["shard_number"], params["replication_factor"]) == (2, 1)
    finally:
        node.stop()
    cluster.jobs.finish(ns, job_name, message)
    wait_for(
        lambda: (
            (cluster.client.get("Deployment", ns, names.server_deployment_name(s)) or {})["spec"]["replicas"]
            == 1
        ),
        "the server released",
    )
    ready = wait_phase(cluster, ns, "made", "Ready")
    assert condition(ready, "CollectionReady")["status"] == "True"
