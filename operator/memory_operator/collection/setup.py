"""Creating the store's collection as specified, bringing a live one to the spec, replicating its shards.

The collection is created exactly as mem0's Qdrant vector store would create it (so that mem0 finds it
and uses it as its own): one unnamed dense vector (`VectorParams(size, distance, on_disk)`), the sparse
vector `bm25` with the IDF modifier for mem0's hybrid search, and `keyword` payload indexes on the fields
mem0 filters by; plus what mem0 leaves to Qdrant's defaults and the spec decides: the shard number and
the replication factor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qdrant_client.http import models

from memory_operator.api.collection import CollectionOutcome, SettingDifference, ShardReplication
from memory_operator.collection.settings import CollectionSettings
from memory_operator.qdrant_node import QdrantError, QdrantNode, Shards

logger = logging.getLogger("memory_operator.collection")

# mem0's `Qdrant._create_filter_indexes` (mem0/vector_stores/qdrant.py): keyword indexes on these.
MEM0_FILTER_FIELDS = ("user_id", "agent_id", "run_id", "actor_id")
# mem0's `Qdrant.create_col`: the sparse vector of its BM25 keyword scoring.
MEM0_SPARSE_VECTOR = "bm25"
# A collection's unnamed vector, in `update_collection`'s vectors map.
UNNAMED_VECTOR = ""


class IncompatibleCollection(QdrantError):
    """The collection exists with vectors the memory server cannot write (size, distance, names)."""


@dataclass
class Replication:
    """What replicating one collection did, and what it could not."""

    replications: list[ShardReplication]
    under_replicated: list[int]


def creation(settings: CollectionSettings) -> dict[str, object]:
    """The `create_collection` arguments: mem0's own, with the spec's shard number and replication factor."""
    return {
        "vectors_config": models.VectorParams(
            size=settings.vector_size, distance=settings.distance, on_disk=settings.on_disk
        ),
        "sparse_vectors_config": {
            MEM0_SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF),
        },
        "shard_number": settings.shard_number,
        "replication_factor": settings.replication_factor,
    }


def _difference(setting: str, desired: object, actual: object) -> SettingDifference:
    return SettingDifference(setting=setting, desired=str(desired), actual=str(actual))


def _value(item: object) -> object:
    return getattr(item, "value", item)


def compare(settings: CollectionSettings, params: models.CollectionParams) -> CollectionOutcome:
    """The spec against a live collection's parameters: what can be updated, what cannot.

    Vector size and distance cannot change (and the server cannot use a collection where they differ):
    they raise IncompatibleCollection. Qdrant changes `on_disk` and the replication factor on a live
    collection; not the shard number (resharding is not in open-source Qdrant), nor does it add a sparse
    vector to an existing collection.
    """
    outcome = CollectionOutcome(name="")
    vectors = params.vectors
    if not isinstance(vectors, models.VectorParams):
        raise IncompatibleCollection(
            f"it has named vectors ({', '.join(sorted(vectors or {}))}); "
            "the memory server writes one unnamed vector"
        )
    for setting, desired, actual in (
        ("vectorSize", settings.vector_size, vectors.size),
        ("distance", settings.distance.value, _value(vectors.distance)),
    ):
        if desired != actual:
            outcome.not_updatable.append(_difference(setting, desired, actual))
    if outcome.not_updatable:
        found = "; ".join(
            f"{d.setting} {d.actual} where the spec says {d.desired}" for d in outcome.not_updatable
        )
        raise IncompatibleCollection(f"its vectors do not fit the store's embedder: {found}")
    if bool(vectors.on_disk) != settings.on_disk:
        outcome.updated.append(_difference("onDisk", settings.on_disk, bool(vectors.on_disk)))
    if (params.replication_factor or 1) != settings.replication_factor:
        outcome.updated.append(
            _difference("replicationFactor", settings.replication_factor, params.replication_factor or 1)
        )
    if (params.shard_number or 1) != settings.shard_number:
        outcome.not_updatable.append(
            _difference("shardNumber", settings.shard_number, params.shard_number or 1)
        )
    if MEM0_SPARSE_VECTOR not in (params.sparse_vectors or {}):
        outcome.not_updatable.append(_difference("sparseVectors", MEM0_SPARSE_VECTOR, "none"))
    return outcome


def apply_updates(node: QdrantNode, name: str, updates: Sequence[SettingDifference]) -> None:
    """Change on the live collection what `compare` found changeable."""
    for update in updates:
        if update.setting == "onDisk":
            node.update_collection(
                name,
                vectors_config={UNNAMED_VECTOR: models.VectorParamsDiff(on_disk=update.desired == "True")},
            )
        elif update.setting == "replicationFactor":
            node.update_collection(
                name, collection_params=models.CollectionParamsDiff(replication_factor=int(update.desired))
            )
        logger.info("%s: %s changed from %s to %s", name, update.setting, update.actual, update.desired)


def missing_indexes(info: models.CollectionInfo) -> list[str]:
    indexed = info.payload_schema or {}
    return [field for field in MEM0_FILTER_FIELDS if field not in indexed]


def ensure_collection(node: QdrantNode, settings: CollectionSettings, name: str) -> CollectionOutcome:
    """Create `name` when missing; otherwise update what Qdrant can change and report the rest."""
    info = node.collection_info(name)
    if info is None:
        try:
            node.create_collection(name, **creation(settings))
            created = True
        except QdrantError as error:
            if error.status != 409:  # 409: made meanwhile (a memory server starting): compared below
                raise
            created = False
        info = node.collection_info(name)
        if info is None:
            raise QdrantError(f"collection {name} does not exist on {node.url} after its creation")
        if created:
            logger.info("created collection %s", name)
            outcome = CollectionOutcome(name=name, created=True)
        else:
            outcome = _compared(node, settings, name, info)
    else:
        outcome = _compared(node, settings, name, info)
    for field in missing_indexes(info):
        node.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
        outcome.payload_indexes_created.append(field)
    return outcome


def _compared(
    node: QdrantNode, settings: CollectionSettings, name: str, info: models.CollectionInfo
) -> CollectionOutcome:
    try:
        outcome = compare(settings, info.config.params)
    except IncompatibleCollection as error:
        raise IncompatibleCollection(f"collection {name} cannot serve this store: {error}") from error
    outcome.name = name
    apply_updates(node, name, outcome.updated)
    for difference in outcome.not_updatable:
        logger.warning(
            "%s: %s is %s where the spec says %s, and Qdrant cannot change it on a live collection",
            name,
            difference.setting,
            difference.actual,
            difference.desired,
        )
    return outcome


def _load(shards: Shards) -> dict[int, int]:
    load: dict[int, int] = {}
    for peers in shards.replicas.values():
        for peer in peers:
            load[peer] = load.get(peer, 0) + 1
    return load


def replication_requests(
    shards: Shards, factor: int, peers: Sequence[int]
) -> tuple[list[ShardReplication], list[int]]:
    """Replicas to copy so that every shard reaches `factor` active replicas on `peers` (the store's
    live peers), the least loaded first; and the shards that cannot reach it (no active replica to copy
    from, or no peer left without one)."""
    load = _load(shards)
    requests: list[ShardReplication] = []
    stuck: list[int] = []
    for shard, replicas in sorted(shards.replicas.items()):
        active = shards.active(shard)
        incoming = sum(1 for s, _ in shards.transfers if s == shard)
        needed = factor - len(active) - incoming
        if needed <= 0:
            continue
        candidates = sorted((p for p in peers if p not in replicas), key=lambda p: (load.get(p, 0), p))
        if not active or len(candidates) < needed:
            stuck.append(shard)
        for peer in candidates[:needed] if active else []:
            requests.append(ShardReplication(shard_id=shard, from_peer=active[0], to_peer=peer))
            load[peer] = load.get(peer, 0) + 1
    return requests, stuck


def replicate(
    node: QdrantNode,
    name: str,
    factor: int,
    peers: Sequence[int],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 1.0,
) -> Replication:
    """Have Qdrant copy shard replicas onto `peers` until every shard has `factor` active replicas (or
    `timeout` seconds pass); wait for the transfers."""
    deadline = time.monotonic() + timeout
    done: list[ShardReplication] = []
    while True:
        info = node.cluster_info(name)
        if info is None:
            raise QdrantError(f"collection {name} disappeared from {node.url}")
        shards = Shards.of(info)
        requests, stuck = replication_requests(shards, factor, peers)
        for request in requests:
            logger.info(
                "%s: replicating shard %d from peer %d to peer %d",
                name,
                request.shard_id,
                request.from_peer,
                request.to_peer,
            )
            node.replicate_shard(name, request.shard_id, request.from_peer, request.to_peer)
            done.append(request)
        short = sorted({s for s in shards.replicas if len(shards.active(s)) < factor})
        if not requests and not shards.transfers and not short:
            return Replication(done, [])
        if time.monotonic() > deadline or (not requests and not shards.transfers and stuck):
            return Replication(done, short)
        sleep(interval)
