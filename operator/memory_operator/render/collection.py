"""The collection Job: `memory-operator collection`, creating the store's collection as the spec says.

Qdrant's defaults are not the spec's: left to mem0, the collection is created by the first server that
reaches Qdrant, with one replica and as many shards as peers had joined at that moment. This Job waits
for every peer, creates the collection (and mem0's `<collection>_entities`) with the spec's settings,
brings a live one to what Qdrant can change, and replicates shards after a scale-up. The controller runs
it and holds the server until it succeeds.

Its name carries a digest of the collection settings and the replica count, so a change to either is a
new Job (a finished Job's pod template cannot change). It keeps no TTL: a finished Job that vanished
would be rendered, and run, again (harmless, the job is idempotent, but wasted).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from memory_operator import env
from memory_operator import labels as labels_module
from memory_operator.api.store import MemoryStore, ServerFlavor
from memory_operator.render import jobs, meta, names, server
from memory_operator.render.meta import Manifest
from memory_operator.server.settings import LOCAL_EMBEDDER_DIMS

# `app.kubernetes.io/component` of the Job's pod (the NetworkPolicy lets it reach Qdrant).
COMPONENT = "collection"
# On the Job and its pod: the digest of the settings it applies.
SETTINGS_LABEL = labels_module.COLLECTION_SETTINGS
CONTAINER = "collection"
# mem0's default for Qdrant (`embedding_model_dims`), which the upstream OpenMemory server keeps unless
# an embedder with other dimensions is configured.
OPENMEMORY_DEFAULT_DIMS = 1536
DISTANCE = "Cosine"  # mem0 creates every collection with cosine distance
ACTIVE_DEADLINE_SECONDS = 2 * 3600  # peers to join, then shard transfers of a large collection
BACKOFF_LIMIT = 3
DIGEST_LENGTH = 8


def vector_size(store: MemoryStore) -> int:
    """The dimensions of the store's embedder: the collection's vector size."""
    embedder = store.spec.server.embedder
    if embedder is not None:
        return embedder.dims
    if store.spec.server.flavor == ServerFlavor.openmemory:
        return OPENMEMORY_DEFAULT_DIMS
    return LOCAL_EMBEDDER_DIMS


def settings(store: MemoryStore) -> dict[str, str]:
    """The Job's settings, by environment variable: what the collection must be, and with which entities."""
    collection = store.spec.vector_store.collection
    return {
        env.COLLECTION_VECTOR_SIZE: str(vector_size(store)),
        env.COLLECTION_DISTANCE: DISTANCE,
        env.COLLECTION_ON_DISK: str(collection.on_disk).lower(),
        env.COLLECTION_SHARD_NUMBER: str(collection.shard_number),
        env.COLLECTION_REPLICATION_FACTOR: str(collection.replication_factor),
        # mem0's graph side (`<collection>_entities`) is the builtin server's; OpenMemory has none.
        env.COLLECTION_ENTITIES: str(store.spec.server.flavor == ServerFlavor.builtin).lower(),
    }


def settings_digest(store: MemoryStore) -> str:
    """A digest of everything the Job applies: the collection, its settings and the peers it waits for."""
    content = {
        **settings(store),
        env.COLLECTION: names.memory_collection(store),
        "replicas": store.spec.vector_store.replicas,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def job_name(store: MemoryStore) -> str:
    """`<store>-collection-<digest>`, the store part shortened to fit 63 characters."""
    suffix = f"-collection-{settings_digest(store)}"
    return names.fit(store.metadata.name, names.MAX_NAME - len(suffix)) + suffix


def _env(store: MemoryStore) -> list[dict[str, Any]]:
    return [
        *server.qdrant_env(store),
        meta.env_value(env.QDRANT_PEERS, ",".join(names.qdrant_peer_urls(store))),
        *jobs.identity_env(store),
        *(meta.env_value(name, value) for name, value in settings(store).items()),
    ]


def collection_job(
    store: MemoryStore, image: str, service_account: str, images: meta.Images = meta.NO_IMAGES
) -> Manifest:
    """The Job making the store's collection as specified (pure: the same store, the same Job)."""
    labels = meta.labels(store, meta.JOBS, COMPONENT, **{SETTINGS_LABEL: settings_digest(store)})
    container = jobs.container(CONTAINER, image, ["collection"], _env(store), [], store)
    # It talks to Qdrant only.
    template = jobs.pod_template(
        labels, service_account, container, [], needs_api=False, store=store, images=images
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(store), "namespace": store.metadata.namespace, "labels": labels},
        "spec": jobs.job_spec(
            template, backoff_limit=BACKOFF_LIMIT, active_deadline_seconds=ACTIVE_DEADLINE_SECONDS, ttl=None
        ),
    }
