"""Labels, metadata, security contexts and small builders shared by every renderer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from memory_operator import labels as labels_
from memory_operator.api.common import ResourceRequirements, SecretKeyRef
from memory_operator.api.store import MemoryStore

Manifest = dict[str, Any]

PART_OF = "memory-operator"

# `app.kubernetes.io/name` of each kind of pod.
QDRANT = "qdrant"
SERVER = "memory-server"
JOBS = "memory-operator"

# `app.kubernetes.io/component` values.
VECTOR_STORE = "vector-store"
SERVER_COMPONENT = "server"
EXPIRATION = "expiration"
BACKUP = "backup"
CREDENTIALS = "credentials"
NETWORK = "network"

# Numeric ids: Qdrant's `-unprivileged` image runs as 1000, the operator's image as 10001.
QDRANT_UID = 1000
OPERATOR_UID = 10001

# Small fixed resources of the expiration and backup jobs.
JOB_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}


def selector_labels(store: MemoryStore, name: str, component: str) -> dict[str, str]:
    """Labels that select one kind of pod of one store (immutable once a workload exists)."""
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": store.metadata.name,
        "app.kubernetes.io/component": component,
        labels_.STORE: store.metadata.name,
    }


def labels(store: MemoryStore, name: str, component: str, **extra: str) -> dict[str, str]:
    """Every label of a child; the controller lists children by `managed-by` and the store label."""
    return {
        **selector_labels(store, name, component),
        "app.kubernetes.io/part-of": PART_OF,
        **labels_.MANAGED_BY,
        **extra,
    }


def metadata(
    store: MemoryStore, object_name: str, name: str, component: str, **extra_labels: str
) -> dict[str, Any]:
    return {
        "name": object_name,
        "namespace": store.metadata.namespace,
        "labels": labels(store, name, component, **extra_labels),
    }


def pod_security_context(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        # Only change ownership of a volume when its root does not already match: fast restarts.
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: ResourceRequirements) -> dict[str, Any]:
    """A container's resources from the spec, leaving out empty sections."""
    result: dict[str, Any] = {}
    if spec.requests:
        result["requests"] = dict(sorted(spec.requests.items()))
    if spec.limits:
        result["limits"] = dict(sorted(spec.limits.items()))
    return result


def env_value(name: str, value: str | int) -> dict[str, Any]:
    return {"name": name, "value": str(value)}


def env_secret(name: str, secret: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def env_secret_ref(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return env_secret(name, ref.name, ref.key)


def empty_dir(name: str, size_limit: str | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {}
    if size_limit:
        source["sizeLimit"] = size_limit
    return {"name": name, "emptyDir": source}


def checksum(*contents: Mapping[str, Any]) -> str:
    """A stable digest of ConfigMap data (never a timestamp: equal content, equal pods)."""
    canonical = json.dumps(list(contents), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def http_probe(path: str, port: str | int, **timing: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, **timing}


def service_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}


def container_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": "TCP"}
