"""`status.memoryCount`: the points of the store's collection, counted through Qdrant's REST API.

Best effort: a count that fails leaves the last one in status and never fails a reconcile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import ValidationError

from memory_operator import labels, tls
from memory_operator.api.store import MemoryStore
from memory_operator.controller import certificates
from memory_operator.controller.cache import Cache
from memory_operator.controller.credentials import secret_values
from memory_operator.render import names

logger = logging.getLogger("memory_operator.controller")

# Tests reach Qdrant elsewhere than its in-cluster Service: a template of its base URL with `{name}`
# (the store) and `{namespace}`, e.g. `http://127.0.0.1:6333`.
QDRANT_URL_TEMPLATE_ENV = "MEMORY_OPERATOR_QDRANT_URL_TEMPLATE"
COUNT_TIMEOUT_SECONDS = 5.0
# The count is a status field of its own writer, apart from the reconcile's.
FIELD_MANAGER = "memory-operator-count"


def qdrant_base_url(store: MemoryStore, template: str | None) -> str:
    if not template:
        return names.qdrant_url(store)
    return template.format(name=store.metadata.name, namespace=store.metadata.namespace).rstrip("/")


async def count_points(
    base_url: str,
    collection: str,
    api_key: str,
    timeout: float = COUNT_TIMEOUT_SECONDS,
    ca_bundle: str | None = None,
) -> int | None:
    """Exact number of points in `collection`; `None` when Qdrant cannot tell (the reason is logged).
    Over https, Qdrant's certificate is verified against `ca_bundle` (PEM), else the system's CAs."""
    url = f"{base_url}/collections/{collection}/points/count"
    # aiohttp, which Kopf runs on already: another HTTP client would cost the operator its memory.
    ssl = tls.context_of(ca_bundle) if base_url.startswith("https://") else True
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, json={"exact": True}, headers={"api-key": api_key}, ssl=ssl) as response,
        ):
            response.raise_for_status()
            return int((await response.json())["result"]["count"])
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError) as error:
        # The message names the URL and status at most, never the request's headers (the key).
        logger.info("could not count the points of %s: %s: %s", url, type(error).__name__, error)
        return None


async def count_store(cache: Cache, body: Mapping[str, Any], template: str | None) -> int | None:
    """The points of the store's collection, with the Qdrant key from the store's own Secret."""
    try:
        store = MemoryStore.model_validate(body)
    except ValidationError:
        return None
    secret = cache.secret(store.metadata.namespace, names.qdrant_secret_name(store))
    key = secret_values(secret).get(labels.QDRANT_API_KEY)
    if not key:
        return None
    bundle = certificates.ca_bundle(cache.secret(store.metadata.namespace, names.tls_secret_name(store)))
    base_url = qdrant_base_url(store, template)
    return await count_points(base_url, names.memory_collection(store), key, ca_bundle=bundle)
