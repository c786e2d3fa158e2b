"""The store's Secrets: client API keys (unless the user brings a Secret) and Qdrant's API key."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field

from memory_operator import labels
from memory_operator.api.store import MemoryStore
from memory_operator.render import meta, names
from memory_operator.render.meta import Manifest

QDRANT_KEY = labels.QDRANT_API_KEY
KEY_BYTES = 32


@dataclass(frozen=True)
class Credentials:
    """The keys a store runs with. The controller generates them once and never regenerates them."""

    # Never in a repr: a logged object must not leak keys.
    api_key: str = field(repr=False)
    read_only_api_key: str = field(repr=False)
    qdrant_api_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> Credentials:
        return cls(
            api_key=secrets.token_urlsafe(KEY_BYTES),
            read_only_api_key=secrets.token_urlsafe(KEY_BYTES),
            qdrant_api_key=secrets.token_urlsafe(KEY_BYTES),
        )

    def __repr__(self) -> str:
        # Keys never reach logs or tracebacks through a repr.
        return "Credentials(<redacted>)"


def _encoded(values: dict[str, str]) -> dict[str, str]:
    # `data` (base64) is what the API server stores, so a converged Secret compares equal.
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())}


def _secret(store: MemoryStore, name: str, app: str, values: dict[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta.metadata(store, name, app, meta.CREDENTIALS),
        "type": "Opaque",
        "data": _encoded(values),
    }


def render(store: MemoryStore, credentials: Credentials) -> list[Manifest]:
    """The Qdrant key Secret, and the client keys Secret unless `auth.existingSecret` holds them."""
    manifests = [
        _secret(store, names.qdrant_secret_name(store), meta.QDRANT, {QDRANT_KEY: credentials.qdrant_api_key})
    ]
    auth = store.spec.auth
    if not auth.existing_secret:
        manifests.append(
            _secret(
                store,
                names.credentials_secret_name(store),
                meta.SERVER,
                {
                    auth.api_key_key: credentials.api_key,
                    auth.read_only_api_key_key: credentials.read_only_api_key,
                },
            )
        )
    return manifests
