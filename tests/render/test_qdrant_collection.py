"""Qdrant's own objects: the collection Job, the snapshots volume, the open-files limit, peer traffic."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import all_versions

from memory_operator import env
from memory_operator.api.common import LabelSelector
from memory_operator.api.store import MemoryStore
from memory_operator.render import collection, jobs, network, qdrant

IMAGE = "ghcr.io/memory-operator/memory-operator:1.0.0"
ACCOUNT = "memory-operator-jobs"


def store(spec: dict[str, Any] | None = None, name: str = "agents") -> MemoryStore:
    return MemoryStore.model_validate({"metadata": {"name": name, "namespace": "agents"}, "spec": spec or {}})


def job(spec: dict[str, Any] | None = None, name: str = "agents") -> dict[str, Any]:
    return collection.collection_job(store(spec, name), IMAGE, ACCOUNT)


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {v["name"]: v.get("value", v.get("valueFrom")) for v in container["env"]}


def volumes_of(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}


def newest_and_oldest() -> list[str]:
    versions = sorted(
        (v for v in all_versions() if tuple(map(int, v.split(".")[:2])) >= (1, 31)),
        key=lambda v: tuple(map(int, v.split("."))),
    )
    return [versions[0], versions[-1]]


# -- the collection Job -------------------------------------------------------------------------


def test_the_job_carries_the_collection_settings_and_every_peer() -> None:
    manifest = job(
        {
            "vectorStore": {
                "replicas": 3,
                "collection": {"replicationFactor": 2, "shardNumber": 6, "onDisk": True},
            }
        }
    )
    variables = env_of(manifest)
    assert variables[env.COLLECTION] == "memories"
    assert variables[env.COLLECTION_VECTOR_SIZE] == "384"  # the builtin server's local embedder
    assert variables[env.COLLECTION_DISTANCE] == "Cosine"
    assert variables[env.COLLECTION_ON_DISK] == "true"
    assert variables[env.COLLECTION_SHARD_NUMBER] == "6"
    assert variables[env.COLLECTION_REPLICATION_FACTOR] == "2"
    assert variables[env.COLLECTION_ENTITIES] == "true"
    assert variables[env.QDRANT_PEERS].count(",") == 2
    assert variables[env.QDRANT_API_KEY] == {"secretKeyRef": {"name": "agents-qdrant-key", "key": "api-key"}}
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["collection"] and container["image"] == IMAGE


def test_the_vector_size_follows_the_embedder_and_the_flavor() -> None:
    embedder = {"provider": "ollama", "model": "nomic-embed-text", "dims": 768}
    assert env_of(job({"server": {"embedder": embedder}}))[env.COLLECTION_VECTOR_SIZE] == "768"
    openmemory = env_of(job({"server": {"flavor": "openmemory"}}))
    assert openmemory[env.COLLECTION_VECTOR_SIZE] == "1536"  # mem0's default, which OpenMemory keeps
    assert openmemory[env.COLLECTION_ENTITIES] == "false"
    assert openmemory[env.COLLECTION] == "openmemory"


def test_the_job_is_shaped_like_the_other_jobs() -> None:
    manifest = job()
    pod = manifest["spec"]["template"]["spec"]
    reference = jobs.pod_template({}, ACCOUNT, jobs.container("x", IMAGE, [], [], []), [], needs_api=False)[
        "spec"
    ]
    for key in (
        "securityContext",
        "restartPolicy",
        "serviceAccountName",
        "automountServiceAccountToken",
        "volumes",
    ):
        assert pod[key] == reference[key], key
    container = pod["containers"][0]
    assert container["securityContext"] == reference["containers"][0]["securityContext"]
    assert container["terminationMessagePath"] == env.TERMINATION_LOG
    assert pod["automountServiceAccountToken"] is False  # it talks to Qdrant only
    assert manifest["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [1]
    assert "ttlSecondsAfterFinished" not in manifest["spec"]
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "collection"
    assert labels["memory-operator.io/store"] == "agents"
    assert labels[collection.SETTINGS_LABEL] == collection.settings_digest(store())
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels


def test_a_change_of_settings_or_replicas_is_a_new_job() -> None:
    base = job()["metadata"]["name"]
    assert base.startswith("agents-collection-") and base == job()["metadata"]["name"]
    changed = [
        {"vectorStore": {"replicas": 3}},
        {"vectorStore": {"collection": {"replicationFactor": 2}}},
        {"vectorStore": {"collection": {"shardNumber": 2}}},
        {"vectorStore": {"collection": {"onDisk": True}}},
        {"server": {"embedder": {"provider": "ollama", "model": "m", "dims": 768}}},
    ]
    names = {job(spec)["metadata"]["name"] for spec in changed}
    assert base not in names and len(names) == len(changed)
    # Settings the Job does not apply leave it alone.
    assert (
        job({"server": {"replicas": 3}, "vectorStore": {"storage": {"size": "99Gi"}}})["metadata"]["name"]
        == base
    )


def test_a_long_store_name_still_fits() -> None:
    name = job(name="a" * 45)["metadata"]["name"]
    assert len(name) <= 63 and name.endswith(
        f"-collection-{collection.settings_digest(store(name='a' * 45))}"
    )


def test_the_qdrant_network_policy_lets_the_job_in() -> None:
    s = store()
    policy = network.qdrant_policy(s, "memory-operator", {"app.kubernetes.io/name": "memory-operator"})
    api_rule = policy["spec"]["ingress"][0]
    job_peer = next(p for p in api_rule["from"] if "matchExpressions" in p["podSelector"])
    selector = LabelSelector.model_validate(job_peer["podSelector"])
    assert selector.matches(job()["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("version", newest_and_oldest())
def test_the_job_validates(version: str) -> None:
    for spec in ({}, {"vectorStore": {"replicas": 3}, "server": {"flavor": "openmemory"}}):
        kubernetes_validate.validate(job(spec), version, strict=True)


# -- Qdrant's pod -------------------------------------------------------------------------------


def test_snapshots_get_an_empty_dir_as_large_as_the_storage_by_default() -> None:
    sts = qdrant.statefulset(store({"vectorStore": {"storage": {"size": "50Gi"}}}))
    assert volumes_of(sts)["snapshots"] == {"name": "snapshots", "emptyDir": {"sizeLimit": "50Gi"}}
    sized = qdrant.statefulset(store({"vectorStore": {"snapshots": {"size": "8Gi"}}}))
    assert volumes_of(sized)["snapshots"]["emptyDir"] == {"sizeLimit": "8Gi"}


@pytest.mark.parametrize("version", newest_and_oldest())
def test_snapshots_on_a_claim_per_pod(version: str) -> None:
    spec = {"vectorStore": {"snapshots": {"claim": True, "size": "20Gi", "storageClassName": "standard"}}}
    sts = qdrant.statefulset(store(spec))
    template = volumes_of(sts)["snapshots"]["ephemeral"]["volumeClaimTemplate"]
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "20Gi"}},
        "storageClassName": "standard",
    }
    assert template["metadata"]["labels"]["memory-operator.io/store"] == "agents"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "snapshots", "mountPath": "/qdrant/snapshots"} in container["volumeMounts"]
    kubernetes_validate.validate(sts, version, strict=True)


def test_every_node_raises_its_open_files_limit() -> None:
    for replicas in (1, 3):
        container = qdrant.statefulset(store({"vectorStore": {"replicas": replicas}}))["spec"]["template"][
            "spec"
        ]["containers"][0]
        script = container["command"][2]
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert script.splitlines()[0].startswith('ulimit -n "$(ulimit -Hn)"')
        assert "exec /qdrant/entrypoint.sh" in script
