"""Specs that the schema accepts but that cannot work."""

from __future__ import annotations

from typing import Any

from memory_operator.api.store import MemoryStore
from memory_operator.controller import validation


def store(**spec: Any) -> MemoryStore:
    return MemoryStore.model_validate({"metadata": {"name": "demo", "namespace": "ns"}, "spec": spec})


def sts_with(size: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-qdrant"},
        "spec": {
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": size}}}}
            ]
        },
    }


def reasons(problems: list[validation.Problem]) -> list[str]:
    return [p.reason for p in problems]


def check(s: MemoryStore, sts: Any = None, claims: Any = ()) -> list[str]:
    return reasons(validation.check_spec(s, statefulset=sts, vector_claims=claims))


def test_default_store_is_fine() -> None:
    assert check(store()) == []


def test_replication_factor_above_replicas() -> None:
    s = store(vectorStore={"replicas": 2, "collection": {"replicationFactor": 3}})
    assert check(s) == ["ReplicationExceedsReplicas"]
    assert check(store(vectorStore={"replicas": 3, "collection": {"replicationFactor": 3}})) == []


def test_storage_shrink_refused_but_growth_allowed() -> None:
    assert check(store(vectorStore={"storage": {"size": "5Gi"}}), sts_with("10Gi")) == [
        "StorageShrinkRefused"
    ]
    assert check(store(vectorStore={"storage": {"size": "20Gi"}}), sts_with("10Gi")) == []
    claim = {
        "metadata": {"name": "data-demo-qdrant-0"},
        "spec": {"resources": {"requests": {"storage": "1Ti"}}},
    }
    assert check(store(vectorStore={"storage": {"size": "20Gi"}}), None, [claim]) == ["StorageShrinkRefused"]


def test_referenced_secrets() -> None:
    s = store(
        server={
            "embedder": {
                "provider": "openai",
                "model": "m",
                "dims": 8,
                "apiKeySecretRef": {"name": "openai", "key": "key"},
            }
        }
    )
    assert reasons(validation.secret_problems(s, {"openai": None})) == ["SecretNotFound"]
    assert reasons(validation.secret_problems(s, {"openai": {"data": {"other": "eA=="}}})) == [
        "SecretKeyMissing"
    ]
    assert validation.secret_problems(s, {"openai": {"data": {"key": "eA=="}}}) == []


def test_a_secret_of_the_user_is_known_by_its_keys_digests() -> None:
    """The operator's cache keeps other people's Secrets as digests: present, empty, absent keys."""
    view = {"digests": {"key": "0" * 64, "empty": validation.EMPTY_DIGEST}}
    assert validation.secret_has_key(view, "key")
    assert not validation.secret_has_key(view, "empty")
    assert not validation.secret_has_key(view, "other")
