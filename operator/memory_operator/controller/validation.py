"""Specs the CRD schema accepts but that cannot work, found before anything is written.

A problem puts the store in `Failed` with an actionable message; nothing is applied, deleted or shrunk
until the spec changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from memory_operator.api.store import MemoryStore


@dataclass(frozen=True)
class Problem:
    """Why a spec cannot be applied: a CamelCase reason and what to do about it."""

    reason: str
    message: str


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
) -> list[Problem]:
    """Every reason the spec cannot be applied, given the live StatefulSet and Qdrant claims.

    Immutable fields are the API server's to refuse (CEL rules in the CRD)."""
    return [
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
    if backup is not None and backup.destination.s3 is not None and backup.destination.s3.credentials_secret:
        refs.append(
            (backup.destination.s3.credentials_secret, None, "spec.backup.destination.s3.credentialsSecret")
        )
    return refs


def secret_has_key(secret: Mapping[str, Any], key: str) -> bool:
    """Whether the Secret holds a non-empty `key`; the operator's cache keeps other people's Secrets as
    digests of their values (`digests`), its own whole (`data`)."""
    if key in (secret.get("stringData") or {}):
        return bool(secret["stringData"][key])
    if key in (secret.get("data") or {}):
        return bool(secret["data"][key])
    return key in (secret.get("digests") or {}) and secret["digests"][key] != EMPTY_DIGEST


# sha256 of the empty string: the digest of a key whose value is empty.
EMPTY_DIGEST = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


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
        elif key is not None and not secret_has_key(secret, key):
            problems.append(Problem("SecretKeyMissing", f"Secret {name} has no key {key} ({path}); add it"))
    return problems
