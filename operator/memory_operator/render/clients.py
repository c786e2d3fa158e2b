"""MemoryClients' Secrets: each client's own (its key and where the store is), and the store's clients
file for its server pods (each client's key hash, access, scopes and quota; never a key).

A client's Secret holds variables an app takes as they are, with `envFrom` or as files of a mounted
volume: `MEMORY_API_KEY`, `MEMORY_URL` (the REST base URL) and `MEMORY_MCP_URL` (MCP over streamable
HTTP, `{user_id}` to fill in); with the store's TLS on, the URLs say `https` and `MEMORY_CA_CERT` is the
CA bundle (PEM) that verifies the server's certificate, when the store's certificate Secret has one.
"""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Sequence
from typing import Any

from memory_operator import env, labels
from memory_operator.api.client import ClientGrant, MemoryClient
from memory_operator.api.common import ObjectMeta
from memory_operator.api.store import MemoryStore
from memory_operator.render import meta, names
from memory_operator.render.meta import Manifest

KEY = "MEMORY_API_KEY"
URL = "MEMORY_URL"
MCP_URL = "MEMORY_MCP_URL"
CA_CERT = "MEMORY_CA_CERT"
CLIENTS_KEY = posixpath.basename(env.CLIENTS_PATH)
CLIENTS_VOLUME = "clients"
# A Secret holds at most 1 MiB; a client takes about 200 bytes of the file (about 5,000 per store).
MAX_CLIENTS_FILE_BYTES = 1024 * 1024 - 4096


def _encoded(values: dict[str, str]) -> dict[str, str]:
    # `data` (base64) is what the API server stores, so a converged Secret compares equal.
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(values.items())}


def store_named(namespace: str, name: str) -> MemoryStore:
    """A store as far as its children's names and URLs go (they derive from its name and namespace).
    Not validated: a name no store could have still makes names (the store is reported missing)."""
    return MemoryStore.model_construct(metadata=ObjectMeta(name=name, namespace=namespace))


def store_of(client: MemoryClient) -> MemoryStore:
    """The store a client names."""
    return store_named(client.metadata.namespace, client.spec.store)


def endpoints(client: MemoryClient, store: MemoryStore | None = None) -> dict[str, str]:
    """The REST base URL and the MCP URL template of the client's store (`store`: its spec, which says
    whether it serves https; by its name alone, http), the client's name its app's."""
    base = names.server_url(store if store is not None else store_of(client))
    return {URL: base, MCP_URL: f"{base}/mcp/{client.metadata.name}/http/{{user_id}}"}


def client_secret(
    client: MemoryClient, key: str, store: MemoryStore | None = None, ca_bundle: str | None = None
) -> Manifest:
    """The client's Secret (the controller owns it by the MemoryClient); with the store's TLS on, its
    CA bundle too."""
    values = {KEY: key, **endpoints(client, store)}
    if ca_bundle and store is not None and store.spec.tls_enabled:
        values[CA_CERT] = ca_bundle
    name = client.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": names.client_secret_name(name),
            "namespace": client.metadata.namespace,
            "labels": {
                "app.kubernetes.io/name": "memory-client",
                "app.kubernetes.io/instance": name,
                "app.kubernetes.io/component": meta.CREDENTIALS,
                "app.kubernetes.io/part-of": meta.PART_OF,
                **labels.MANAGED_BY,
                labels.CLIENT: name,
            },
        },
        "type": "Opaque",
        "data": _encoded(values),
    }


def clients_file(grants: Sequence[ClientGrant]) -> str:
    """The server's clients file: compact JSON, sorted by name (the same clients, the same bytes)."""
    ordered = sorted(grants, key=lambda g: g.name)
    document: dict[str, Any] = {"clients": [g.wire() for g in ordered]}
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def clients_secret(store: MemoryStore, grants: Sequence[ClientGrant]) -> Manifest:
    """The Secret the store's server pods mount: the clients file."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta.metadata(store, names.clients_secret_name(store), meta.SERVER, meta.CREDENTIALS),
        "type": "Opaque",
        "data": _encoded({CLIENTS_KEY: clients_file(grants)}),
    }


def volume(store: MemoryStore) -> dict[str, Any]:
    # Mounted whole, never by subPath: the kubelet then swaps in a changed Secret's files in place.
    return {"name": CLIENTS_VOLUME, "secret": {"secretName": names.clients_secret_name(store)}}


def volume_mount() -> dict[str, Any]:
    return {"name": CLIENTS_VOLUME, "mountPath": env.CLIENTS_DIR, "readOnly": True}
