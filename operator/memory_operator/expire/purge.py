"""Count and delete the memories of a planned policy in one Qdrant collection.

The builtin server keeps every state in Qdrant, so its memories are deleted server-side by filter,
one call per rule. Counting before and after each delete gives exact figures even when a run is
interrupted and rerun: a rerun finds only what still matches.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.api.jobs import ExpirationSummary, RuleSummary
from memory_operator.api.policy import MemoryPolicySpec
from memory_operator.collection_names import entities_collection
from memory_operator.expire import rules
from memory_operator.expire.rules import PlannedRule

log = logging.getLogger(__name__)

SCROLL_PAGE = 512
RETRIEVE_BATCH = 256
ENTITY_LINKS_FIELD = "linked_memory_ids"


class Deleter(Protocol):
    """Deletes every memory a filter matches in the collection."""

    def delete(self, query: qm.Filter) -> None: ...


class QdrantDeleter:
    """Deletes in Qdrant itself, server-side, by filter (the builtin server keeps no other state)."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection

    def delete(self, query: qm.Filter) -> None:
        self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=query), wait=True)


def count(client: QdrantClient, collection: str, query: qm.Filter) -> int:
    return int(client.count(collection, count_filter=query, exact=True).count)


def scroll(
    client: QdrantClient,
    collection: str,
    query: qm.Filter | None,
    payload: Sequence[str] | bool = False,
    limit: int | None = None,
    page_size: int = SCROLL_PAGE,
) -> Iterator[qm.Record]:
    """Every point `query` matches (at most `limit`), page by page, without vectors."""
    offset: qm.ExtendedPointId | None = None
    seen = 0
    size = page_size
    while True:
        page_size = size if limit is None else min(size, limit - seen)
        if page_size <= 0:
            return
        records, offset = client.scroll(
            collection,
            scroll_filter=query,
            limit=page_size,
            offset=offset,
            with_payload=list(payload) if not isinstance(payload, bool) else payload,
            with_vectors=False,
        )
        yield from records
        seen += len(records)
        if offset is None:
            return


def ensure_datetime_indexes(client: QdrantClient, collection: str, fields: Sequence[str]) -> list[str]:
    """Create `datetime` payload indexes on the fields that have no index yet; the ones created.

    A field that already has an index of any type is left alone: replacing it could break whoever
    made it, and the range filter works without an index, only slower.
    """
    indexed = client.get_collection(collection).payload_schema or {}
    created = [field for field in fields if field not in indexed]
    for field in created:
        client.create_payload_index(
            collection, field_name=field, field_schema=qm.PayloadSchemaType.DATETIME, wait=True
        )
    return created


def run_rule(
    client: QdrantClient,
    collection: str,
    rule: PlannedRule,
    deleter: Deleter,
    dry_run: bool,
    list_limit: int,
) -> RuleSummary:
    """Count what `rule` matches and delete it (or, in a dry run, list some of it)."""
    matched = count(client, collection, rule.filter)
    result = RuleSummary(name=rule.name, matched=matched)
    if dry_run:
        if list_limit > 0 and matched:
            result.ids = [str(r.id) for r in scroll(client, collection, rule.filter, limit=list_limit)]
        return result
    if matched:
        deleter.delete(rule.filter)
        # What is left was written after the count, or could not be deleted: never reported as gone.
        result.deleted = max(matched - count(client, collection, rule.filter), 0)
    return result


def expire_collection(
    client: QdrantClient,
    collection: str,
    planned: Sequence[PlannedRule],
    deleter: Deleter,
    summary: ExpirationSummary,
    list_limit: int = 20,
) -> None:
    """Run the planned rules in order, adding each rule's result to `summary` as soon as it is done."""
    if not client.collection_exists(collection):
        log.info("collection %s does not exist yet: nothing to expire", collection)
        summary.rules.extend(RuleSummary(name=rule.name) for rule in planned)
        return
    for rule in planned:
        result = run_rule(client, collection, rule, deleter, summary.dry_run, list_limit)
        verb = "would delete" if summary.dry_run else "deleted"
        log.info("rule %s matched %d, %s %d", rule.name, result.matched, verb, result.deleted)
        summary.add_rule(result)


def _as_point_id(value: Any) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


def existing_ids(client: QdrantClient, collection: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), RETRIEVE_BATCH):
        batch: list[qm.ExtendedPointId] = list(ids[start : start + RETRIEVE_BATCH])
        records = client.retrieve(collection, ids=batch, with_payload=False, with_vectors=False)
        found.update(str(r.id) for r in records)
    return found


def prune_entity_links(client: QdrantClient, collection: str) -> int:
    """Unlink mem0's entity records from memories that no longer exist; entities left unlinked go.

    mem0 extracts entities (names, quoted terms) from memory texts into `<collection>_entities`,
    each with the ids of the memories it came from. Deleting memories by filter bypasses mem0's own
    cleanup, so without this the text of purged memories would live on in their entities.
    Returns the number of entity records changed or deleted.
    """
    entities = entities_collection(collection)
    if not client.collection_exists(entities):
        return 0
    records = list(scroll(client, entities, None, payload=[ENTITY_LINKS_FIELD]))
    links = {
        record.id: [str(i) for i in ((record.payload or {}).get(ENTITY_LINKS_FIELD) or [])]
        for record in records
    }
    # Ids that are not UUIDs name no memory mem0 could have written: they count as gone.
    valid = sorted({point for ids in links.values() for i in ids if (point := _as_point_id(i))})
    alive = existing_ids(client, collection, valid) if client.collection_exists(collection) else set()
    orphans: list[qm.ExtendedPointId] = []
    changed = 0
    for entity_id, linked in links.items():
        remaining = [i for i in linked if _as_point_id(i) in alive]
        if remaining == linked:
            continue
        if remaining:
            client.set_payload(
                entities, payload={ENTITY_LINKS_FIELD: remaining}, points=[entity_id], wait=True
            )
            changed += 1
        else:
            orphans.append(entity_id)
    if orphans:
        client.delete(entities, points_selector=qm.PointIdsList(points=orphans), wait=True)
    return changed + len(orphans)


def expire_store(
    client: QdrantClient,
    collection: str,
    spec: MemoryPolicySpec,
    summary: ExpirationSummary,
    *,
    now: dt.datetime,
    deleter: Deleter | None = None,
    list_limit: int = 20,
    create_indexes: bool = True,
) -> ExpirationSummary:
    """Apply `spec` to the memories of `collection` as of `now`, recording what happened in `summary`.

    `summary.dry_run` decides whether anything is deleted. `create_indexes` is off for Qdrant's
    local mode, which has no payload indexes.
    """
    planned = rules.plan(spec, now)
    deleter = deleter or QdrantDeleter(client, collection)
    if create_indexes and client.collection_exists(collection):
        created = ensure_datetime_indexes(client, collection, rules.datetime_fields(spec))
        if created:
            log.info("created datetime payload indexes on %s", ", ".join(created))
    expire_collection(client, collection, planned, deleter, summary, list_limit)
    if not summary.dry_run and summary.deleted:
        summary.entities_pruned = prune_entity_links(client, collection)
        if summary.entities_pruned:
            log.info("unlinked %d entity records from purged memories", summary.entities_pruned)
    return summary
