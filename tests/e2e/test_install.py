"""What a user does after `helm install`: the chart's RBAC, the examples applied with kubectl, the
printer columns, `kubectl wait`, and the API server's own validation of bad objects."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from e2e.cluster import OPERATOR_USER, ROOT, ApiError, load_yaml_documents, wait_for
from e2e.conftest import Cluster
from e2e.test_backup import backup_phase
from e2e.test_store import wait_phase
from memory_operator.api.backup import CollectionSnapshot, MemoryBackupStatus
from memory_operator.render import names
from test_crds import INVALID, TRANSITIONS

EXAMPLES = ROOT / "manifests" / "examples"


def test_the_operator_holds_no_wildcard_permission(cluster: Cluster) -> None:
    ns = cluster.client.namespace("permissions")
    for scope in (["-n", ns], ["-n", "memory-operator"], []):
        listing = cluster.kubectl("auth", "can-i", "--list", f"--as={OPERATOR_USER}", *scope)
        rows = [line.split() for line in listing.splitlines()[1:] if line.strip()]
        # Resource rows: "<resources> [<names>] [<verbs>]"; non-resource URLs (discovery) are the
        # cluster's defaults for every authenticated user.
        resource_rows = [line for line in listing.splitlines()[1:] if not line.lstrip().startswith("[")]
        for line in resource_rows:
            resource = line.split()[0]
            verbs = re.findall(r"\[([^\]]*)\]", line)[-1]
            assert "*" not in resource.split(".")[0] and "*" not in verbs.split(), f"wildcard: {line}"
        assert rows, listing


def secret(ns: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": data,
    }


def finish_backup(cluster: Cluster, ns: str, backup: str) -> None:
    job = names.backup_job_name(backup)
    wait_for(lambda: cluster.client.get("Job", ns, job), f"the Job of backup {backup}")
    summary = MemoryBackupStatus(
        phase="Completed",
        location=f"s3://agent-memory-backups/agents-prod/{backup}/",
        snapshots=[CollectionSnapshot(collection="memories", name="memories-1.snapshot", size_bytes=10)],
    ).wire()
    cluster.jobs.finish(ns, job, summary)
    wait_for(lambda: backup_phase(cluster, ns, backup) == "Completed", f"backup {backup} Completed")


def test_the_examples_apply_and_every_store_becomes_ready(cluster: Cluster) -> None:
    ns = cluster.client.namespace("agents")
    # The Secrets the examples' comments tell a user to create first.
    cluster.client.create(secret(ns, "openai", {"api-key": "sk-test"}))
    cluster.client.create(secret(ns, "backup-s3", {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}))
    files = sorted(EXAMPLES.glob("*.yaml"))
    cluster.kubectl("apply", "--server-side", "-n", ns, *[arg for f in files for arg in ("-f", str(f))])

    stores = [d for f in files for d in load_yaml_documents(f) if d["kind"] == "MemoryStore"]
    backups = [d for f in files for d in load_yaml_documents(f) if d["kind"] == "MemoryBackup"]
    for backup in backups:
        finish_backup(cluster, ns, backup["metadata"]["name"])
    for store in stores:
        if store["spec"].get("bootstrap"):
            body = wait_for(
                lambda s=store: cluster.client.get("MemoryStore", ns, s["metadata"]["name"]), "a store"
            )
            job = names.restore_job_name(_model(body))
            wait_for(lambda job=job: cluster.client.get("Job", ns, job), "the restore Job", timeout=90)
            cluster.jobs.finish(ns, job, {"phase": "Completed", "restored": ["memories"]})
    for store in stores:
        wait_phase(cluster, ns, store["metadata"]["name"], "Ready", timeout=120)

    out = cluster.kubectl("get", "memorystores", "-n", ns)
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "READY", "PHASE", "REPLICAS", "AGE"]
    assert sorted(r.split()[0] for r in rows) == sorted(s["metadata"]["name"] for s in stores)
    assert all(r.split()[1:3] == ["True", "Ready"] for r in rows), out
    waited = cluster.kubectl(
        "wait", "-n", ns, "--for=condition=Ready", "--timeout=30s",
        *[f"memorystore/{s['metadata']['name']}" for s in stores],
    )  # fmt: skip
    assert waited.count("condition met") == len(stores)
    for kind in ("memorypolicies", "memorybackups"):
        listed = cluster.kubectl("get", kind, "-n", ns)
        assert len(listed.splitlines()) > 1, listed


def _model(body: dict[str, Any]) -> Any:
    from memory_operator.api.store import MemoryStore

    return MemoryStore.model_validate(body)


# What the API server says where its wording differs from the jsonschema reproduction of tests/test_crds.py
# (the CEL messages are the CRDs' own, the same in both).
SERVER_MESSAGES = {
    "bad-enum": 'Unsupported value: "langchain"',
    "replicas-0": "should be greater than or equal to 1",
    "bad-cron": "spec.schedule in body should match",
    "bad-max-age": "spec.rules[0].maxAge in body should match",
    "unknown-field": 'unknown field "spec.vectorStore.replica"',
    "bad-quantity": "spec.vectorStore.storage.size in body should match",
    "bad-deletion-policy": 'Unsupported value: "Orphan"',
}


def refusal(cluster: Cluster, obj: dict[str, Any], ns: str) -> ApiError:
    body = copy.deepcopy(obj)
    body["metadata"]["namespace"] = ns
    try:
        response = cluster.client.http.post(
            cluster.client.path(body["kind"], ns), json=body, params={"fieldValidation": "Strict"}
        )
    except Exception as error:  # pragma: no cover - transport failure
        raise AssertionError(error) from error
    if not response.is_error:
        cluster.client.http.delete(cluster.client.path(body["kind"], ns, body["metadata"]["name"]))
        raise AssertionError(f"the API server accepted {body}")
    return ApiError(response)


@pytest.mark.parametrize(("case", "obj", "expected"), INVALID, ids=[i for i, _, _ in INVALID])
def test_the_api_server_refuses_what_the_crds_refuse(
    cluster: Cluster, case: str, obj: dict[str, Any], expected: str
) -> None:
    ns = _validation_namespace(cluster)
    error = refusal(cluster, obj, ns)
    # An unknown field fails decoding (400) before validation (422).
    assert error.code == (400 if case == "unknown-field" else 422), error.message
    assert SERVER_MESSAGES.get(case, expected) in error.message


@pytest.mark.parametrize(("case", "old", "new", "expected"), TRANSITIONS, ids=[i for i, *_ in TRANSITIONS])
def test_the_api_server_refuses_changes_to_immutable_fields(
    cluster: Cluster, case: str, old: dict[str, Any], new: dict[str, Any], expected: str
) -> None:
    ns = _validation_namespace(cluster)
    created = copy.deepcopy(old)
    created["metadata"] = {
        "name": f"t-{case}",
        "namespace": ns,
        "annotations": {"memory-operator.io/paused": "true"},
    }
    cluster.client.create(created)
    changed = copy.deepcopy(new)
    changed["metadata"] = {**created["metadata"]}
    for _attempt in range(10):  # the operator writes the object's status meanwhile: 409 means read again
        current = cluster.client.get(created["kind"], ns, created["metadata"]["name"])
        assert current is not None
        changed["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        response = cluster.client.http.put(
            cluster.client.path(created["kind"], ns, created["metadata"]["name"]), json=changed
        )
        if response.status_code != 409:
            break
    assert response.status_code == 422, response.text
    assert expected in ApiError(response).message


_NAMESPACE: list[str] = []


def _validation_namespace(cluster: Cluster) -> str:
    if not _NAMESPACE:
        _NAMESPACE.append(cluster.client.namespace("validation"))
    return _NAMESPACE[0]
