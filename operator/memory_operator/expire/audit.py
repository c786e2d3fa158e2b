"""The audit after an expiration run: exact duplicates, near duplicates and stale memories, per scope.

A scope is a memory's user, agent and run ids together, as mem0 scopes its searches. One scroll of the
collection's payloads (a few keys, never the vectors) gives every memory's scope, content hash and
dates:

- exact duplicates are memories of a scope with the same content hash (mem0 stores the md5 of the
  text); the oldest of each is the original, the others are the duplicates (what `dedupe: exact`
  deletes);
- stale memories are those not updated (`updated_at`, else `created_at`) for longer than `staleAfter`;
- near duplicates are pairs of distinct texts of a scope whose vectors' cosine similarity is at or
  above the threshold, looked for from the oldest memory of each text of every scope that has two
  texts or more. Against a Qdrant server, Qdrant finds them (`QdrantSearch`): nearest-neighbour
  queries sent in batches (`query_batch_points`), each by the point's id, so that Qdrant reads the
  vector where it is and no vector leaves it. A query first asks for the few nearest memories of the
  whole collection, the cheapest search there is; only when all of them are above the threshold (a
  crowd of look-alikes, possibly in other scopes) is it asked again within the scope, page by page,
  so that no pair is missed. In Qdrant's local mode (the embedded server's), every vector is in this
  process already and a search scans the whole collection in Python, so the scope's vectors are
  compared with each other instead (`InProcessSimilarity`).

The canary's reserved scope (`memory_operator.synthetic`) is never audited.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.api.jobs import AuditSummary, FindingSummary
from memory_operator.api.policy import AuditSpec
from memory_operator.expire import purge
from memory_operator.expire.rules import SCOPE_FIELDS, parse_duration
from memory_operator.synthetic import is_synthetic

log = logging.getLogger(__name__)

HASH_FIELD = "hash"
AUDITED_PAYLOAD = [HASH_FIELD, *SCOPE_FIELDS, "created_at", "updated_at"]
# Queries sent to Qdrant in one batch request.
SEARCH_BATCH = 64
# Nearest memories of the whole collection asked for first; a scope rarely has more look-alikes.
NEIGHBOURS = 8
# Page size of the within-scope query that follows a crowded first answer.
SCOPE_PAGE = 64
# Qdrant returns scores above `score_threshold` (local mode: strictly above); asking slightly lower
# and comparing here keeps "at or above the threshold" exact.
SCORE_EPSILON = 1e-6
DELETE_BATCH = 256
RETRIEVE_BATCH = 256
# Payload pages of the audit's one pass over the collection: a few small keys per memory.
READ_PAGE = 2048
# Rows of a scope's similarity matrix computed at once (local mode): 256 rows of a 100k-memory scope
# are 100 MB of scores.
MATRIX_ROWS = 256

Scope = tuple[str | None, str | None, str | None]


@dataclass(frozen=True)
class Memory:
    """What the audit needs of one memory."""

    id: str
    point_id: qm.ExtendedPointId
    """The id as Qdrant has it (mem0's are UUIDs; a number stays a number)."""
    scope: Scope
    hash: str | None
    created_at: str
    last_change: dt.datetime | None
    """`updated_at`, else `created_at`, as an aware datetime; None when neither parses."""


def _moment(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # A naive timestamp is UTC, as Qdrant reads it.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _scope_of(payload: dict[str, object]) -> Scope:
    user, agent, run = (payload.get(key) for key in SCOPE_FIELDS)
    return (
        str(user) if user is not None else None,
        str(agent) if agent is not None else None,
        str(run) if run is not None else None,
    )


def read_memories(client: QdrantClient, collection: str) -> list[Memory]:
    """Every memory of the collection but the synthetic ones: the audited keys only, no vectors."""
    memories = []
    for record in purge.scroll(client, collection, None, payload=AUDITED_PAYLOAD, page_size=READ_PAGE):
        payload = dict(record.payload or {})
        if is_synthetic(payload):
            continue
        updated = _moment(payload.get("updated_at")) or _moment(payload.get("created_at"))
        memories.append(
            Memory(
                id=str(record.id),
                point_id=record.id,
                scope=_scope_of(payload),
                hash=str(payload[HASH_FIELD]) if payload.get(HASH_FIELD) else None,
                created_at=str(payload.get("created_at") or ""),
                last_change=updated,
            )
        )
    return memories


def _sortable(scope: Scope) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, value or "") for value in scope)


def _oldest_first(memories: Iterable[Memory]) -> list[Memory]:
    return sorted(memories, key=lambda m: (m.created_at, m.id))


def _text(memory: Memory) -> str:
    """What tells texts apart: mem0's content hash; a memory without one stands alone."""
    return memory.hash or f"id:{memory.id}"


def copies(memories: Sequence[Memory]) -> dict[tuple[Scope, str], list[Memory]]:
    """Memories by scope and content hash, oldest first."""
    groups: dict[tuple[Scope, str], list[Memory]] = defaultdict(list)
    for memory in memories:
        groups[(memory.scope, _text(memory))].append(memory)
    return {key: _oldest_first(group) for key, group in groups.items()}


def _finding(count: int, scopes: set[Scope], ids: Iterable[str], sample_size: int) -> FindingSummary:
    sample: list[str] = []
    for memory_id in ids:
        if len(sample) >= sample_size:
            break
        if memory_id not in sample:
            sample.append(memory_id)
    return FindingSummary(count=count, scopes=len(scopes), sample_ids=sample)


def exact_duplicates(
    groups: dict[tuple[Scope, str], list[Memory]], sample_size: int
) -> tuple[FindingSummary, list[Memory]]:
    """The finding, and every duplicate (each copy but the oldest)."""
    duplicates = [m for group in groups.values() for m in group[1:]]
    duplicates = _oldest_first(duplicates)
    finding = _finding(
        len(duplicates), {m.scope for m in duplicates}, (m.id for m in duplicates), sample_size
    )
    return finding, duplicates


def stale(memories: Sequence[Memory], cutoff: dt.datetime, sample_size: int) -> FindingSummary:
    """Memories whose last change is before `cutoff`, the stalest sampled first."""
    found = sorted(
        (m for m in memories if m.last_change is not None and m.last_change < cutoff),
        key=lambda m: (m.last_change, m.id),
    )
    return _finding(len(found), {m.scope for m in found}, (m.id for m in found), sample_size)


def scope_filter(scope: Scope) -> qm.Filter:
    """Exactly this scope: each id it has, and none of those it has not (mem0 leaves them out)."""
    must: list[qm.Condition] = []
    for key, value in zip(SCOPE_FIELDS, scope, strict=True):
        if value is None:
            must.append(qm.IsEmptyCondition(is_empty=qm.PayloadField(key=key)))
        else:
            must.append(qm.FieldCondition(key=key, match=qm.MatchValue(value=value)))
    return qm.Filter(must=must)


class Neighbours(Protocol):
    """How the memories at or above the similarity to each memory of a scope are found."""

    searches: int
    """Searches Qdrant ran."""

    def neighbours(
        self, memories: Sequence[Memory], audited: Mapping[str, Memory]
    ) -> Iterator[tuple[Memory, list[Memory]]]:
        """Each of `memories` with audited memories at or above the similarity (any scope's, maybe)."""
        ...


@dataclass
class QdrantSearch:
    """Near duplicates found by Qdrant (a server): batches of nearest-neighbour queries, each by a
    point's id, so that Qdrant reads the vector where it is and no vector leaves it."""

    client: QdrantClient
    collection: str
    similarity: float
    searches: int = 0

    def _request(
        self, memory: Memory, query_filter: qm.Filter | None, limit: int, offset: int = 0
    ) -> qm.QueryRequest:
        return qm.QueryRequest(
            query=memory.point_id,
            filter=query_filter,
            limit=limit,
            offset=offset,
            score_threshold=self.similarity - SCORE_EPSILON,
            with_payload=False,
            with_vector=False,
        )

    def _run(self, requests: Sequence[qm.QueryRequest]) -> list[list[qm.ScoredPoint]]:
        self.searches += len(requests)
        responses = self.client.query_batch_points(self.collection, requests=list(requests))
        return [list(response.points) for response in responses]

    def neighbours(
        self, memories: Sequence[Memory], audited: Mapping[str, Memory]
    ) -> Iterator[tuple[Memory, list[Memory]]]:
        """The nearest memories of the whole collection first; within the scope, page by page, when
        all of those were at or above the similarity (a crowd of look-alikes)."""
        for start in range(0, len(memories), SEARCH_BATCH):
            batch = memories[start : start + SEARCH_BATCH]
            answers = self._run([self._request(m, None, NEIGHBOURS + 1) for m in batch])
            for memory, points in zip(batch, answers, strict=True):
                close = [p for p in points if p.score >= self.similarity]
                if len(points) == NEIGHBOURS + 1 and len(close) == len(points):
                    close = list(self._within_scope(memory))
                yield memory, [audited[str(p.id)] for p in close if str(p.id) in audited]

    def _within_scope(self, memory: Memory) -> Iterator[qm.ScoredPoint]:
        offset = 0
        while True:
            (points,) = self._run([self._request(memory, scope_filter(memory.scope), SCOPE_PAGE, offset)])
            close = [p for p in points if p.score >= self.similarity]
            yield from close
            if len(points) < SCOPE_PAGE or len(close) < len(points):
                return
            offset += SCOPE_PAGE


@dataclass
class InProcessSimilarity:
    """Near duplicates in Qdrant's local mode (the embedded server's), which keeps every vector in the
    memory of the process that opened it and answers each search by scanning the whole collection,
    filters evaluated in Python: one search per memory would cost the square of the collection. Here
    each scope's vectors, already in this process, are compared with each other only (cosine, by
    blocks of rows), which costs the sum of the squares of the scopes' sizes."""

    client: QdrantClient
    collection: str
    similarity: float
    searches: int = 0

    def _vectors(self, memories: Sequence[Memory]) -> np.ndarray:
        rows: dict[str, list[float]] = {}
        for start in range(0, len(memories), RETRIEVE_BATCH):
            points = [m.point_id for m in memories[start : start + RETRIEVE_BATCH]]
            found = self.client.retrieve(self.collection, ids=points, with_payload=False, with_vectors=True)
            for record in found:
                vector = record.vector
                if isinstance(vector, list):
                    rows[str(record.id)] = vector  # type: ignore[assignment]
        matrix = np.array([rows[m.id] for m in memories], dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms)

    def neighbours(
        self, memories: Sequence[Memory], audited: Mapping[str, Memory]
    ) -> Iterator[tuple[Memory, list[Memory]]]:
        by_scope: dict[Scope, list[Memory]] = defaultdict(list)
        for memory in memories:
            by_scope[memory.scope].append(memory)
        for members in by_scope.values():
            vectors = self._vectors(members)
            for start in range(0, len(members), MATRIX_ROWS):
                scores = vectors[start : start + MATRIX_ROWS] @ vectors.T
                for row, found in enumerate(scores >= self.similarity):
                    mine = start + row
                    yield members[mine], [members[j] for j in np.flatnonzero(found) if j != mine]


def near_duplicates(
    search: Neighbours, groups: dict[tuple[Scope, str], list[Memory]], sample_size: int
) -> FindingSummary:
    """Pairs of distinct texts of a scope at or above the similarity; searched from the oldest memory
    of each text, in scopes with two texts or more."""
    texts_per_scope: dict[Scope, int] = defaultdict(int)
    for scope, _ in groups:
        texts_per_scope[scope] += 1
    originals = [group[0] for (scope, _), group in groups.items() if texts_per_scope[scope] > 1]
    audited = {m.id: m for group in groups.values() for m in group}
    pairs: dict[tuple[Scope, str, str], tuple[str, str]] = {}
    for memory, found in search.neighbours(originals, audited):
        mine = _text(memory)
        for other in found:
            theirs = _text(other)
            if other.scope != memory.scope or theirs == mine:
                continue
            first, second = sorted((mine, theirs))
            pairs.setdefault((memory.scope, first, second), (memory.id, groups[(memory.scope, theirs)][0].id))
    ordered = sorted(pairs.items(), key=lambda item: (_sortable(item[0][0]), item[0][1], item[0][2]))
    ids = (memory_id for _, pair in ordered for memory_id in pair)
    return _finding(len(pairs), {key[0] for key, _ in ordered}, ids, sample_size)


def dedupe(
    client: QdrantClient, collection: str, duplicates: Sequence[Memory], deleter: purge.Deleter
) -> int:
    """Delete these duplicates; the number actually gone."""
    gone = 0
    for start in range(0, len(duplicates), DELETE_BATCH):
        points = [m.point_id for m in duplicates[start : start + DELETE_BATCH]]
        deleter.delete(qm.Filter(must=[qm.HasIdCondition(has_id=points)]))
        left = client.retrieve(collection, ids=points, with_payload=False, with_vectors=False)
        gone += len(points) - len(left)
    return gone


def audit_collection(
    client: QdrantClient,
    collection: str,
    spec: AuditSpec,
    *,
    now: dt.datetime,
    dry_run: bool,
    deleter: purge.Deleter | None = None,
    local: bool = False,
) -> AuditSummary:
    """Audit the memories of `collection` as of `now`; with `dedupe: exact` and not `dry_run`, delete
    the exact duplicates (through `deleter`, Qdrant itself by default). `local`: `client` is Qdrant's
    local mode, whose vectors are in this process already (`InProcessSimilarity`)."""
    started = time.monotonic()
    summary = AuditSummary()
    if not client.collection_exists(collection):
        log.info("collection %s does not exist yet: nothing to audit", collection)
        return summary
    memories = read_memories(client, collection)
    groups = copies(memories)
    summary.memories = len(memories)
    summary.scopes = len({m.scope for m in memories})
    summary.exact_duplicates, duplicates = exact_duplicates(groups, spec.sample_size)
    summary.stale = stale(memories, now - parse_duration(spec.stale_after), spec.sample_size)
    if spec.near_duplicates:
        method = InProcessSimilarity if local else QdrantSearch
        search = method(client, collection, spec.near_duplicate_similarity)
        summary.near_duplicates = near_duplicates(search, groups, spec.sample_size)
        summary.near_duplicate_searches = search.searches
    if spec.dedupe == "exact" and not dry_run and duplicates:
        summary.deduplicated = dedupe(
            client, collection, duplicates, deleter or purge.QdrantDeleter(client, collection)
        )
    summary.duration_seconds = round(time.monotonic() - started, 3)
    log.info(
        "audited %d memories in %d scopes: %d exact duplicates%s, %s near-duplicate pairs, %d stale",
        summary.memories,
        summary.scopes,
        summary.exact_duplicates.count,
        f" ({summary.deduplicated} deleted)" if summary.deduplicated else "",
        summary.near_duplicates.count if summary.near_duplicates else "no search for",
        summary.stale.count,
    )
    return summary
