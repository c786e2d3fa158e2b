"""The store's API keys: generated once, read back forever after, or adopted from the user's Secret.

Keys never leave this module except into the rendered Secrets: not into logs, status or Events.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memory_operator import labels
from memory_operator.api.store import MemoryStore
from memory_operator.controller.validation import Problem, secret_has_key
from memory_operator.render import Credentials


@dataclass(frozen=True)
class Resolution:
    """The keys to render with, or why there are none; never printed with the keys."""

    credentials: Credentials | None
    secret_name: str
    problem: Problem | None = None

    def __repr__(self) -> str:
        return f"Resolution(secret_name={self.secret_name!r}, problem={self.problem!r})"


def secret_values(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """The decoded values of a Secret (`data` is base64, `stringData` plain)."""
    if not secret:
        return {}
    values = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def resolve(
    store: MemoryStore,
    *,
    generated_secret: Mapping[str, Any] | None,
    qdrant_secret: Mapping[str, Any] | None,
    existing_secret: Mapping[str, Any] | None,
    generated_secret_name: str,
    fresh: Credentials,
) -> Resolution:
    """Keep every key that exists, take from `fresh` only the missing ones, adopt the user's Secret when
    named (it is read for its keys' presence only: the pods take its values themselves)."""
    auth = store.spec.auth
    qdrant_key = secret_values(qdrant_secret).get(labels.QDRANT_API_KEY) or fresh.qdrant_api_key
    if auth.existing_secret:
        name = auth.existing_secret
        if existing_secret is None:
            return Resolution(
                None,
                name,
                Problem(
                    "SecretNotFound",
                    f"spec.auth.existingSecret names Secret {name}, which does not exist in namespace "
                    f"{store.metadata.namespace}; create it with key {auth.api_key_key}",
                ),
            )
        if not secret_has_key(existing_secret, auth.api_key_key):
            return Resolution(
                None,
                name,
                Problem(
                    "SecretKeyMissing",
                    f"Secret {name} has no key {auth.api_key_key} (spec.auth.apiKeyKey); add it",
                ),
            )
        # The client keys stay in the user's Secret: nothing renders them.
        return Resolution(Credentials(api_key="", read_only_api_key="", qdrant_api_key=qdrant_key), name)
    own = secret_values(generated_secret)
    return Resolution(
        Credentials(
            api_key=own.get(auth.api_key_key) or fresh.api_key,
            read_only_api_key=own.get(auth.read_only_api_key_key) or fresh.read_only_api_key,
            qdrant_api_key=qdrant_key,
        ),
        generated_secret_name,
    )
