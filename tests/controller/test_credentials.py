"""API keys: generated once, kept forever after, or taken from the user's Secret."""

from __future__ import annotations

import base64
from typing import Any

from memory_operator.api.store import MemoryStore
from memory_operator.controller import credentials


def store(**auth: Any) -> MemoryStore:
    return MemoryStore.model_validate(
        {"metadata": {"name": "s", "namespace": "ns"}, "spec": {"auth": auth} if auth else {}}
    )


FRESH = credentials.Credentials.generate()


def secret(**values: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def test_missing_keys_are_generated_and_distinct() -> None:
    result = credentials.resolve(
        store(),
        generated_secret=None,
        qdrant_secret=None,
        existing_secret=None,
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    assert result.problem is None and result.secret_name == "s-keys"
    keys = result.credentials
    assert keys == FRESH
    assert len({keys.api_key, keys.read_only_api_key, keys.qdrant_api_key}) == 3
    assert all(len(k) >= 32 for k in (keys.api_key, keys.read_only_api_key, keys.qdrant_api_key))


def test_existing_keys_are_never_regenerated() -> None:
    result = credentials.resolve(
        store(),
        generated_secret=secret(**{"api-key": "rw", "read-only-api-key": "ro"}),
        qdrant_secret=secret(**{"api-key": "q"}),
        existing_secret=None,
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    keys = result.credentials
    assert keys is not None and (keys.api_key, keys.read_only_api_key, keys.qdrant_api_key) == (
        "rw",
        "ro",
        "q",
    )


def test_only_the_missing_key_is_generated() -> None:
    result = credentials.resolve(
        store(),
        generated_secret={"stringData": {"api-key": "rw"}},
        qdrant_secret=None,
        existing_secret=None,
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    keys = result.credentials
    assert keys is not None and keys.api_key == "rw" and keys.read_only_api_key == FRESH.read_only_api_key


def test_users_secret_is_adopted_with_its_own_key_names() -> None:
    result = credentials.resolve(
        store(existingSecret="mine", apiKeyKey="token"),
        generated_secret=None,
        qdrant_secret=secret(**{"api-key": "q"}),
        existing_secret=secret(token="user-key"),
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    assert result.problem is None and result.secret_name == "mine"
    keys = result.credentials
    # The client keys stay in the user's Secret (the pods read it); Qdrant's key is the operator's.
    assert keys is not None and (keys.api_key, keys.read_only_api_key, keys.qdrant_api_key) == ("", "", "q")


def test_missing_users_secret_or_key_is_a_problem_that_never_shows_keys() -> None:
    missing = credentials.resolve(
        store(existingSecret="mine"),
        generated_secret=None,
        qdrant_secret=None,
        existing_secret=None,
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    assert missing.credentials is None and missing.problem is not None
    assert missing.problem.reason == "SecretNotFound" and "mine" in missing.problem.message
    no_key = credentials.resolve(
        store(existingSecret="mine"),
        generated_secret=None,
        qdrant_secret=None,
        existing_secret=secret(other="secret-value"),
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    assert no_key.problem is not None and no_key.problem.reason == "SecretKeyMissing"
    assert "secret-value" not in repr(no_key) + no_key.problem.message


def test_resolution_repr_hides_keys() -> None:
    result = credentials.resolve(
        store(),
        generated_secret=secret(**{"api-key": "very-secret"}),
        qdrant_secret=None,
        existing_secret=None,
        generated_secret_name="s-keys",
        fresh=FRESH,
    )
    assert "very-secret" not in repr(result)


def test_credentials_repr_hides_keys() -> None:
    keys = credentials.Credentials(
        api_key="k1-secret", read_only_api_key="k2-secret", qdrant_api_key="k3-secret"
    )
    assert "secret" not in repr(keys)
