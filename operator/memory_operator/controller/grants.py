"""Which MemoryClients a store's server admits, and with what: decided from the store's snapshot. Pure.

A client is admitted when it names the store, parses, has valid scopes, is not being deleted and its
Secret holds a key; the server is given a SHA-256 of the key, never the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from memory_operator.api.client import ClientGrant, MemoryClient
from memory_operator.api.store import MemoryStore
from memory_operator.render import clients as render_clients
from memory_operator.render import names

Body = Mapping[str, Any]


def secret_value(secret: Body | None, key: str) -> str | None:
    """One decoded value of a Secret as the cache holds ours (`data`, base64)."""
    if not secret:
        return None
    encoded = (secret.get("data") or {}).get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parsed(body: Body) -> MemoryClient | None:
    try:
        return MemoryClient.model_validate(body)
    except ValidationError:
        return None


def clients_of(store_name: str, clients: Sequence[Body]) -> list[Body]:
    """The MemoryClients (of one namespace) that name the store."""
    return [c for c in clients if (c.get("spec") or {}).get("store") == store_name]


def grant_of(body: Body, secrets: Mapping[str, Body]) -> ClientGrant | None:
    """What the store's server is told of a client; None when it is not to be admitted (yet)."""
    if body["metadata"].get("deletionTimestamp"):
        return None
    secret = secrets.get(names.client_secret_name(str(body["metadata"]["name"])))
    version = _version(body, secret)
    if version is not None and version in _GRANTS:
        return _GRANTS[version]
    grant = _grant_of(body, secret)
    if version is not None:
        if len(_GRANTS) >= MAX_GRANTS:
            _GRANTS.clear()
        _GRANTS[version] = grant
    return grant


def _grant_of(body: Body, secret: Body | None) -> ClientGrant | None:
    client = parsed(body)
    if client is None or client.spec.scopes.problems():
        return None
    key = secret_value(secret, render_clients.KEY)
    if not key:
        return None
    return ClientGrant(
        name=client.metadata.name,
        key_sha256=key_sha256(key),
        access=client.spec.access,
        scopes=client.spec.scopes,
        quota=client.spec.quota,
    )


# Grants by the versions of the client and its Secret: a store of thousands of clients parses and
# hashes each once per change, not once per reconcile.
_GRANTS: dict[tuple[str, str, str, str], ClientGrant | None] = {}
MAX_GRANTS = 20_000


def _version(body: Body, secret: Body | None) -> tuple[str, str, str, str] | None:
    """The client's and its Secret's uid and resourceVersion; None when one is unknown (not from the
    API server: nothing to key a cache by)."""
    meta, secret_meta = body["metadata"], (secret or {}).get("metadata") or {}
    parts = (
        meta.get("uid"),
        meta.get("resourceVersion"),
        secret_meta.get("uid"),
        secret_meta.get("resourceVersion"),
    )
    if secret is not None and not all(parts):
        return None
    if secret is None and not all(parts[:2]):
        return None
    return tuple(str(p) for p in parts)  # type: ignore[return-value]


def store_grants(
    store: MemoryStore, clients: Sequence[Body], secrets: Mapping[str, Body], has_clients_secret: bool
) -> list[ClientGrant] | None:
    """The clients file's content for the store; None when the store never had a MemoryClient (no
    Secret, no mount: a store without clients renders as before). Once the clients Secret exists it
    stays, even empty, so that removing the last client rolls no pod."""
    mine = clients_of(store.metadata.name, clients)
    if not mine and not has_clients_secret:
        return None
    grants = [g for body in mine if (g := grant_of(body, secrets)) is not None]
    return sorted(grants, key=lambda g: g.name)


# Parsed clients files by (uid, resourceVersion): a change of one store's file re-checks each of its
# clients, which then costs one parse, not one per client.
_ADMITTED: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}
MAX_PARSED = 64


def admitted(clients_secret: Body | None) -> frozenset[tuple[str, str]]:
    """(name, key hash) of every client in a store's clients Secret; parsed once per version of it."""
    if not clients_secret:
        return frozenset()
    meta = clients_secret.get("metadata") or {}
    version = (str(meta.get("uid")), str(meta.get("resourceVersion")))
    found = _ADMITTED.get(version)
    if found is None:
        text = secret_value(clients_secret, render_clients.CLIENTS_KEY) or "{}"
        try:
            entries = json.loads(text).get("clients") or []
        except (ValueError, AttributeError):
            entries = []
        found = frozenset(
            (str(e.get("name")), str(e.get("keySha256"))) for e in entries if isinstance(e, dict)
        )
        if len(_ADMITTED) >= MAX_PARSED:
            _ADMITTED.clear()  # older versions are not asked for again
        _ADMITTED[version] = found
    return found
