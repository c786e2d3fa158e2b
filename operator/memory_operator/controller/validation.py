"""Specs the CRD schema accepts but that cannot work, found before anything is written.

A problem puts the store in `Failed` with an actionable message; nothing is applied, deleted or shrunk
until the spec changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from memory_operator.api.store import MemoryStore

# The store annotation holding the immutable fields as last applied, to refuse later changes.
APPLIED_SPEC_ANNOTATION = "memory-operator.io/applied-immutable-spec"


@dataclass(frozen=True)
class Problem:
    """Why a spec cannot be applied: a CamelCase reason and what to do about it."""

    reason: str
    message: str


def immutable_fields(store: MemoryStore) -> dict[str, Any]:
    """The fields that must never change once applied, in wire form."""
    spec = store.spec
    embedder = spec.server.embedder
    return {
        "collection": spec.vector_store.collection.name,
        "embedderDims": embedder.dims if embedder else None,
        "storageClassName": spec.vector_store.storage.storage_class_name,
        "bootstrap": spec.bootstrap.wire() if spec.bootstrap else None,
    }


def encode_immutable(fields: Mapping[str, Any]) -> str:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))


def applied_immutable(annotations: Mapping[str, str]) -> dict[str, Any] | None:
    raw = annotations.get(APPLIED_SPEC_ANNOTATION)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def immutable_changes(store: MemoryStore, applied: Mapping[str, Any] | None) -> list[Problem]:
    if applied is None:
        return []
    problems = []
    current = immutable_fields(store)
    labels = {
        "collection": "spec.vectorStore.collection.name",
        "embedderDims": "spec.server.embedder.dims",
        "storageClassName": "spec.vectorStore.storage.storageClassName",
        "bootstrap": "spec.bootstrap",
    }
    for key, path in labels.items():
        if key in applied and applied[key] != current[key]:
            problems.append(
                Problem(
                    "ImmutableFieldChanged",
                    f"{path} is immutable: it was {json.dumps(applied[key])} and is now "
                    f"{json.dumps(current[key])}; set it back, or create a new store",
                )
            )
    return problems


def replication_problems(store: MemoryStore) -> list[Problem]:
    vector = store.spec.vector_store
    factor = vector.collection.replication_factor
    if factor > vector.replicas:
        return [
            Problem(
                "ReplicationExceedsReplicas",
                f"spec.vectorStore.collection.replicationFactor is {factor} but only {vector.replicas} "
                f"Qdrant node(s) are requested; raise spec.vectorStore.replicas to at least {factor} "
                "or lower the replication factor",
            )
        ]
    return []


def _storage_request(obj: Mapping[str, Any]) -> Decimal | None:
    raw = obj.get("spec", {}).get("resources", {}).get("requests", {}).get("storage")
    return parse_quantity(raw) if raw else None


def shrink_problems(
    store: MemoryStore, statefulset: Mapping[str, Any] | None, claims: Iterable[Mapping[str, Any]]
) -> list[Problem]:
    """A requested size below what the live volume templates or claims already have."""
    wanted_raw = store.spec.vector_store.storage.size
    wanted = parse_quantity(wanted_raw)
    current: list[tuple[str, Decimal]] = []
    if statefulset:
        for template in statefulset.get("spec", {}).get("volumeClaimTemplates") or []:
            size = _storage_request(template)
            if size is not None:
                current.append((f"the StatefulSet's volume template {template['metadata']['name']}", size))
    for claim in claims:
        size = _storage_request(claim)
        if size is not None:
            current.append((f"PersistentVolumeClaim {claim['metadata']['name']}", size))
    larger = [(what, size) for what, size in current if size > wanted]
    if not larger:
        return []
    what, size = max(larger, key=lambda item: item[1])
    return [
        Problem(
            "StorageShrinkRefused",
            f"spec.vectorStore.storage.size {wanted_raw} is smaller than {what} ({size} bytes); "
            "volumes cannot shrink: set the size back to at least the current one",
        )
    ]


def check_spec(
    store: MemoryStore,
    *,
    statefulset: Mapping[str, Any] | None,
    vector_claims: Iterable[Mapping[str, Any]],
    annotations: Mapping[str, str],
) -> list[Problem]:
    """Every reason the spec cannot be applied, given the live StatefulSet and Qdrant claims."""
    return [
        *immutable_changes(store, applied_immutable(annotations)),
        *replication_problems(store),
        *shrink_problems(store, statefulset, vector_claims),
    ]


def referenced_secrets(store: MemoryStore) -> list[tuple[str, str | None, str]]:
    """Secrets the spec names besides `auth.existingSecret`: (name, key or None, field path)."""
    refs: list[tuple[str, str | None, str]] = []
    server = store.spec.server
    for field_name, model in (("llm", server.llm), ("embedder", server.embedder)):
        if model is not None and model.api_key_secret_ref is not None:
            ref = model.api_key_secret_ref
            refs.append((ref.name, ref.key, f"spec.server.{field_name}.apiKeySecretRef"))
    backup = store.spec.backup
    if backup is not None and backup.destination.s3 is not None:
        refs.append(
            (backup.destination.s3.credentials_secret, None, "spec.backup.destination.s3.credentialsSecret")
        )
    return refs


def secret_problems(store: MemoryStore, secrets: Mapping[str, Mapping[str, Any] | None]) -> list[Problem]:
    """Referenced Secrets that are missing or lack their key (`secrets` maps names to live objects)."""
    problems = []
    for name, key, path in referenced_secrets(store):
        secret = secrets.get(name)
        if secret is None:
            problems.append(
                Problem(
                    "SecretNotFound",
                    f"{path} names Secret {name}, which does not exist in namespace "
                    f"{store.metadata.namespace}; create it",
                )
            )
        elif (
            key is not None
            and key not in (secret.get("data") or {})
            and key not in (secret.get("stringData") or {})
        ):
            problems.append(Problem("SecretKeyMissing", f"Secret {name} has no key {key} ({path}); add it"))
    return problems
