"""Every memory of one subject deleted from a store's Qdrant collections, server-side, by filter.

A subject is one scope field (`user_id`, `agent_id` or `run_id`) and its exact value. The builtin
server keeps every state of a memory in its Qdrant point, and what it derives from memories beside it:

- the memories' collection (mem0's points: the text, its vector, its history and access log);
- mem0's `<collection>_entities`: entity records extracted from memory texts, each carrying the scope
  ids of the add that made it and the ids of the memories it came from;
- the server's `<collection>_apps`: per user, whether each app is paused.

Each is deleted from by one filter on the subject (the same filter the memory server's erase route uses),
counted before and after, and repeated a few times should writes still arrive; entity records of other
scopes that still name a deleted memory are then unlinked. The canary's reserved scope is left out,
as in every bulk change, unless it is the very subject.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.collection_names import apps_collection, entities_collection
from memory_operator.expire.purge import count, prune_entity_links
from memory_operator.synthetic import CANARY_USER_ID, SCOPE_FIELD, synthetic_condition

log = logging.getLogger("memory_operator.erase")

# Deletes of one collection at most, while points of the subject keep arriving.
PASSES = 3


@dataclass
class Erased:
    """What one erasure deleted; never the subject's id."""

    memories: int = 0
    """Memories of the subject deleted."""
    related: int = 0
    """Entity records and app states deleted or unlinked with them."""
    remaining: int = 0
    """Memories of the subject counted after the last delete (written meanwhile)."""
    collections: list[str] = field(default_factory=list)
    """The collections that existed and were gone through."""


def subject_filter(key: str, value: str) -> qm.Filter:
    """Every point whose payload `key` is exactly `value` (the canary's reserved scope aside)."""
    condition = qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
    if key == SCOPE_FIELD and value == CANARY_USER_ID:
        return qm.Filter(must=[condition])
    return qm.Filter(must=[condition], must_not=[synthetic_condition()])


def delete_matching(
    client: QdrantClient, collection: str, query: qm.Filter, passes: int = PASSES
) -> tuple[int, int]:
    """Delete what `query` matches in `collection`; (deleted, left) from exact counts around each delete."""
    deleted = 0
    left = count(client, collection, query)
    for _ in range(passes):
        if not left:
            break
        client.delete(collection, points_selector=qm.FilterSelector(filter=query), wait=True)
        after = count(client, collection, query)
        deleted += max(left - after, 0)
        left = after
    return deleted, left


def erase_subject(client: QdrantClient, collection: str, key: str, value: str) -> Erased:
    """Erase the subject `key == value` from the store whose memories are in `collection`."""
    query = subject_filter(key, value)
    result = Erased()
    if client.collection_exists(collection):
        result.collections.append(collection)
        result.memories, result.remaining = delete_matching(client, collection, query)
    entities = entities_collection(collection)
    for companion in (entities, apps_collection(collection)):
        if client.collection_exists(companion):
            result.collections.append(companion)
            result.related += delete_matching(client, companion, query)[0]
    if result.memories and entities in result.collections:
        # Entity records of another scope may still name a deleted memory (and hold words of its text).
        result.related += prune_entity_links(client, collection)
    return result


@dataclass(frozen=True)
class Reapplied:
    """What re-applying erasures after a restore deleted."""

    names: list[str] = field(default_factory=list)
    memories: int = 0
    related: int = 0


def reapply(client: QdrantClient, collection: str, subjects: Sequence[tuple[str, str, str]]) -> Reapplied:
    """Erase each `(name, key, value)` again, in order; what they deleted together."""
    names: list[str] = []
    memories = related = 0
    for name, key, value in subjects:
        erased = erase_subject(client, collection, key, value)
        log.info(
            "re-applied MemoryErasure %s: %d memories and %d related records deleted",
            name,
            erased.memories,
            erased.related,
        )
        names.append(name)
        memories += erased.memories
        related += erased.related
    return Reapplied(names=names, memories=memories, related=related)
