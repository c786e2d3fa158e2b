"""Stores and policies to render, from the smallest to every optional feature at once, and lookups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from memory_operator.api import MemoryPolicy, MemoryStore
from memory_operator.render import Credentials, Directives, RenderSettings, render_store

NAMESPACE = "agents"
# Fixed keys, so that two renderings can be compared byte for byte.
CREDENTIALS = Credentials(api_key="rw-5ecret", read_only_api_key="ro-5ecret", qdrant_api_key="qd-5ecret")
SETTINGS = RenderSettings(operator_namespace="memory-operator")

OPENAI = {"name": "openai", "key": "api-key"}
SERVER_CONFIG = {
    "categories": [
        {"name": "incident", "description": "Outages and their causes", "expiration": "90d"},
        {"name": "temporary", "expiration": "7d"},
        {"name": "service-dependency", "expiration": "never"},
    ],
    "customInstructions": "Only keep facts about services and incidents.",
    "defaultExpiration": {"session": "2w"},
}

# name -> spec: one per optional feature, plus everything together.
REPRESENTATIVE_SPECS: dict[str, dict[str, Any]] = {
    "minimal": {},
    "distributed": {
        "vectorStore": {
            "replicas": 3,
            "storage": {"size": "50Gi", "storageClassName": "fast-ssd"},
            "collection": {"replicationFactor": 2},
        },
        "server": {"replicas": 2},
    },
    "models": {
        "server": {
            "llm": {"provider": "openai", "model": "gpt-4.1-mini", "apiKeySecretRef": OPENAI},
            "embedder": {
                "provider": "ollama",
                "model": "nomic-embed-text",
                "dims": 768,
                "baseUrl": "http://ollama:11434",
            },
        }
    },
    "openmemory": {
        "server": {
            "flavor": "openmemory",
            "user": "agents",
            "llm": {"provider": "openai", "model": "gpt-4.1-mini", "apiKeySecretRef": OPENAI},
            "embedder": {
                "provider": "openai",
                "model": "text-embedding-3-small",
                "dims": 1536,
                "apiKeySecretRef": OPENAI,
            },
        }
    },
    "existing-secret": {"auth": {"existingSecret": "my-keys", "apiKeyKey": "rw", "readOnlyApiKeyKey": "ro"}},
    "backup-pvc": {"backup": {"destination": {"pvc": {"size": "5Gi", "storageClassName": "standard"}}}},
    "backup-existing-claim": {"backup": {"destination": {"pvc": {"claimName": "shared-backups"}}}},
    "backup-s3": {
        "backup": {
            "schedule": "15 1 * * *",
            "suspend": True,
            "destination": {
                "s3": {
                    "bucket": "memories",
                    "prefix": "agents/",
                    "endpoint": "http://minio:9000",
                    "region": "eu-west-1",
                    "credentialsSecret": "s3-keys",
                }
            },
            "retention": {"maxCount": 3, "maxAge": "14d"},
        }
    },
    "restore": {
        "bootstrap": {"fromBackup": {"name": "nightly-1"}},
        "backup": {"destination": {"s3": {"bucket": "memories", "credentialsSecret": "s3-keys"}}},
    },
    "restore-without-destination": {"bootstrap": {"fromBackup": {"name": "nightly-1"}}},
    "server-config": {"server": {"config": SERVER_CONFIG}},
    "canary": {"monitoring": {"canary": {"schedule": "*/10 * * * *", "topK": 3, "minRecall": 0.9}}},
    "everything": {
        "vectorStore": {"replicas": 5, "collection": {"replicationFactor": 3, "onDisk": True}},
        "server": {
            "replicas": 3,
            "image": "registry.example/memory:1",
            "llm": {"provider": "openai", "model": "gpt-4.1-mini", "apiKeySecretRef": OPENAI},
            "config": SERVER_CONFIG,
        },
        "auth": {"existingSecret": "my-keys"},
        "backup": {"destination": {"pvc": {}}},
        "bootstrap": {"fromBackup": {"name": "nightly-1"}},
        "deletionPolicy": "Delete",
    },
}


def make_store(spec: dict[str, Any] | None = None, name: str = "mem", **labels: str) -> MemoryStore:
    return MemoryStore.model_validate(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryStore",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": spec or {},
        }
    )


def make_policy(name: str = "ttl", **spec: Any) -> MemoryPolicy:
    body = {"rules": [{"name": "old", "maxAge": "30d"}], **spec}
    return MemoryPolicy.model_validate(
        {
            "apiVersion": "memory-operator.io/v1alpha1",
            "kind": "MemoryPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": body,
        }
    )


POLICIES = [make_policy("ttl"), make_policy("sessions", dryRun=True, schedule="@hourly")]


BACKUP_NAME = "mem-202501010200"


def every_job(store: MemoryStore) -> Directives:
    """Directives that add every Job the store can have: one backup's, the restore's, the collection's."""
    return Directives(
        backups=(BACKUP_NAME,) if store.spec.backup is not None else (),
        restore=store.spec.bootstrap is not None,
        collection=True,
        hold_server=store.spec.bootstrap is not None,
    )


def render(
    spec: dict[str, Any] | None = None,
    policies: list[MemoryPolicy] | None = None,
    credentials: Credentials | None = CREDENTIALS,
    settings: RenderSettings = SETTINGS,
    directives: Directives | None = None,
) -> list[dict[str, Any]]:
    store = make_store(spec)
    chosen = every_job(store) if directives is None else directives
    return render_store(store, policies or [], settings, credentials, chosen)


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single manifest of `kind` (and `name`), failing if there is not exactly one."""
    found = [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def kinds(manifests: list[dict[str, Any]]) -> list[str]:
    return [m["kind"] for m in manifests]


def pod_specs(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod template spec(s) of a workload manifest."""
    spec = manifest.get("spec", {})
    if manifest["kind"] in ("StatefulSet", "Deployment", "Job"):
        yield spec["template"]["spec"]
    elif manifest["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def pod_templates(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = manifest.get("spec", {})
    if manifest["kind"] in ("StatefulSet", "Deployment", "Job"):
        yield spec["template"]
    elif manifest["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or the valueFrom mapping for variables read from Secrets."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
