"""Labels, metadata, security contexts and small builders shared by every renderer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memory_operator import images as images_
from memory_operator import labels as labels_
from memory_operator.api.common import ResourceRequirements, SecretKeyRef
from memory_operator.api.pods import PodSettings
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
CANARY = "canary"
BACKUP = "backup"
CREDENTIALS = "credentials"
NETWORK = "network"
JOBS_COMPONENT = "jobs"

# Numeric ids: Qdrant's `-unprivileged` image runs as 1000, the operator's image as 10001.
QDRANT_UID = 1000
OPERATOR_UID = 10001


@dataclass(frozen=True)
class Images:
    """Where the operator's deployment says images come from, for every store."""

    registry: str | None = None
    """Registry the default images are pulled from instead of their own (`images.relocate`)."""
    pull_secrets: Sequence[str] = ()
    """Secrets every pod pulls its image with, before the store's own `imagePullSecrets`."""

    def default_or_given(self, image: str | None, default: str) -> str:
        """The image a store names, or its default from the registry. An image equal to the default
        counts as the default: the API server writes `vectorStore.image`'s default into every store."""
        if image and image != default:
            return image
        return images_.relocate(default, self.registry)


# Default images from their own registries, no pull secret (a frozen, shareable default).
NO_IMAGES = Images()


def pull_secrets(store: MemoryStore, images: Images) -> list[dict[str, str]]:
    """`imagePullSecrets` of the store's pods: the operator's, then the store's, each once."""
    wanted = [*images.pull_secrets, *(ref.name for ref in store.spec.image_pull_secrets)]
    return [{"name": name} for name in dict.fromkeys(wanted)]


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


def http_probe(path: str, port: str | int, scheme: str | None = None, **timing: int) -> dict[str, Any]:
    """An httpGet probe; `scheme` `HTTPS` for a TLS port (unset: HTTP, the API server's default)."""
    action: dict[str, Any] = {"path": path, "port": port}
    if scheme:
        action["scheme"] = scheme
    return {"httpGet": action, **timing}


def service_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": name, "protocol": "TCP"}


def container_port(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": "TCP"}


def pod_metadata(
    own_labels: Mapping[str, str], pod: PodSettings | None, own_annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A pod template's metadata: the spec's labels and annotations under the operator's, which win
    (selectors and checksums must hold whatever the spec says)."""
    extra_labels = pod.labels if pod is not None else {}
    extra_annotations = pod.annotations if pod is not None else {}
    result: dict[str, Any] = {"labels": {**extra_labels, **own_labels}}
    annotations = {**extra_annotations, **(own_annotations or {})}
    if annotations:
        result["annotations"] = annotations
    return result


def _spread(pod: PodSettings, selector: Mapping[str, str]) -> list[dict[str, Any]]:
    """The spec's spread constraints, counting the component's own pods where they name none."""
    constraints = []
    for constraint in pod.topology_spread_constraints:
        rendered = constraint.wire()
        rendered.setdefault("labelSelector", {"matchLabels": dict(selector)})
        if not rendered.get("matchLabelKeys"):
            rendered.pop("matchLabelKeys", None)
        constraints.append(rendered)
    return constraints


def _affinity(pod: PodSettings, default: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec's affinity; the operator's default parts (Qdrant's spreading over hosts) stay where the
    spec sets no part of the same kind."""
    return {**(default or {}), **(pod.affinity or {})}


def placed(
    spec: dict[str, Any],
    pod: PodSettings | None,
    selector: Mapping[str, str],
    pull: Sequence[Mapping[str, str]],
    default_affinity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod spec with the pull secrets and the spec's placement added. Nothing set, nothing added: a
    store that sets none of it renders as before, so an operator upgrade rolls no pod."""
    result = dict(spec)
    if pull:
        result["imagePullSecrets"] = [dict(secret) for secret in pull]
    affinity = _affinity(pod, default_affinity) if pod is not None else dict(default_affinity or {})
    if affinity:
        result["affinity"] = affinity
    if pod is None:
        return result
    if pod.node_selector:
        result["nodeSelector"] = dict(sorted(pod.node_selector.items()))
    if pod.tolerations:
        result["tolerations"] = [t.wire() for t in pod.tolerations]
    if pod.topology_spread_constraints:
        result["topologySpreadConstraints"] = _spread(pod, selector)
    if pod.priority_class_name:
        result["priorityClassName"] = pod.priority_class_name
    return result
