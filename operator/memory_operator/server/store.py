"""Memories on mem0 and Qdrant, scoped by user, agent and run.

Every state lives in the Qdrant point's payload, flat as mem0 writes it: mem0's own keys (`data`,
`hash`, `created_at`, `updated_at`, `user_id`, `agent_id`, `run_id`, `expiration_date`, ...), the
caller's metadata, and the server's keys (`state`, `app`, `categories`, the history and the access
log). App states are points of a small second collection (`<collection>_apps`). Replicas therefore
share nothing but Qdrant. mem0 does the adds, updates and searches; state changes and batch deletes
go to Qdrant directly, in one call each, because mem0 has no API for them and one call is
all-or-nothing.

Every operation is given an owner: a request's scope (`Scope`: every given id must match) or, for
requests by memory id without a scope, all its key reaches (`Reach`). Nothing outside the owner is
read, changed or told apart from a memory that does not exist.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.erase.core import Erased, erase_subject
from memory_operator.server import history
from memory_operator.server.config import ServerConfig, default_expiration_date
from memory_operator.server.limits import MAX_MESSAGES, search_filters
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.scope_id import InvalidScopeId, check_scope_id
from memory_operator.server.scope_rules import ScopeRules
from memory_operator.synthetic import CANARY_USER_ID, synthetic_condition

if TYPE_CHECKING:
    from mem0 import Memory

    from memory_operator.server.apps import AppRegistry

T = TypeVar("T")
log = logging.getLogger("memory_operator.server.store")

SCOPE_KEYS = ("user_id", "agent_id", "run_id")
# Payload keys that callers' metadata may not set: mem0's own and the server's.
RESERVED_KEYS = frozenset(
    {
        "data",
        "hash",
        "created_at",
        "updated_at",
        "text_lemmatized",
        "user_id",
        "agent_id",
        "run_id",
        "actor_id",
        "role",
        "attributed_to",
        "expiration_date",
        "state",
        "state_changed_at",
        "app",
        "categories",
        history.HISTORY_KEY,
        history.HISTORY_TRUNCATED_KEY,
        history.ACCESS_LOG_KEY,
        history.ACCESS_COUNTS_KEY,
    }
)
# Keys mem0 lifts out of the payload into the top level of its results.
PROMOTED_KEYS = (
    "user_id",
    "agent_id",
    "run_id",
    "actor_id",
    "role",
    "expiration_date",
    "created_at",
    "updated_at",
    "hash",
    "attributed_to",
)
# Big and rarely wanted: lists leave them out of what Qdrant sends.
BOOKKEEPING_KEYS = [history.HISTORY_KEY]
SCROLL_PAGE = 256
# Most memories one search or filtered listing goes through.
MAX_LISTED = 1000


class MemoryState(StrEnum):
    active = "active"
    paused = "paused"
    archived = "archived"
    # Accepted as a filter for OpenMemory clients; deletes remove the point, so nothing is ever in it.
    deleted = "deleted"


# What OpenMemory lists by default: everything not archived or deleted.
LISTED_STATES = (MemoryState.active, MemoryState.paused)
STORED_STATES = (MemoryState.active, MemoryState.paused, MemoryState.archived)


class BackendUnavailable(Exception):
    """Qdrant could not be reached, answered with an error, or the server is still starting."""


class MemoryNotFound(Exception):
    """No memory with these ids in the caller's scope (memories of other users count as absent)."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(f"memory not found: {', '.join(ids)}")
        self.ids = list(ids)


class AppNotFound(Exception):
    """No memory of this app, and no state of it, within the caller's reach."""


class AppPaused(Exception):
    """The app is paused for the user: it may not add memories (OpenMemory's rule)."""

    def __init__(self, app: str) -> None:
        super().__init__(f"App {app} is currently paused on OpenMemory. Cannot create new memories.")
        self.app = app


class InvalidRequest(ValueError):
    """The request is well-formed but cannot be applied (an unknown filter operator, a bad date).

    `loc` names the field at fault when one is (as in a validation error: `("user_id",)`).
    """

    def __init__(self, message: str, loc: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.loc = tuple(loc)


@dataclass(frozen=True)
class Scope:
    """Whose memories an operation sees: every given id must match.

    Every route builds one, so this is where the scope id grammar is enforced for all of them (the
    edges check it first, to answer with the field's place in the request); the ids are then handed
    to mem0 and compared with Qdrant's payloads exactly as given.
    """

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for key in SCOPE_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            try:
                check_scope_id(key, value)
            except InvalidScopeId as error:
                raise InvalidRequest(str(error), loc=(key,)) from None
        if not self.as_filters():
            raise InvalidRequest("at least one of user_id, agent_id, run_id is required")

    def as_filters(self) -> dict[str, str]:
        return {key: value for key in SCOPE_KEYS if (value := getattr(self, key))}

    def contains(self, payload: Mapping[str, Any]) -> bool:
        return all(payload.get(key) == value for key, value in self.as_filters().items())

    def conditions(self) -> list[qm.Condition]:
        return [
            qm.FieldCondition(key=key, match=qm.MatchValue(value=value))
            for key, value in self.as_filters().items()
        ]


@dataclass(frozen=True)
class Reach:
    """Every memory a key may touch: those of any of `scopes`, or all memories when `scopes` is None."""

    scopes: tuple[Scope, ...] | None = None

    def permits(self, scope: Scope) -> bool:
        """Whether a request's scope is within reach: at least as narrow as one of the key's scopes."""
        if self.scopes is None:
            return True
        wanted = scope.as_filters()
        return any(all(wanted.get(k) == v for k, v in s.as_filters().items()) for s in self.scopes)

    def contains(self, payload: Mapping[str, Any]) -> bool:
        return self.scopes is None or any(s.contains(payload) for s in self.scopes)

    def conditions(self) -> list[qm.Condition]:
        if self.scopes is None:
            return []
        return [qm.Filter(should=[qm.Filter(must=s.conditions()) for s in self.scopes])]


EVERYTHING = Reach()
# Whose memories an operation may touch: a request's scope, or a key's whole reach (the store's keys'
# `Reach`, a client's `ScopeRules`).
Owner = Scope | Reach | ScopeRules


@dataclass(frozen=True)
class StoredMemory:
    """One memory as the API returns it."""

    id: str
    text: str
    state: str
    app: str | None
    categories: list[str]
    metadata: dict[str, Any]
    user_id: str | None
    agent_id: str | None
    run_id: str | None
    created_at: str | None
    updated_at: str | None
    expiration_date: str | None
    score: float | None = None
    hash: str | None = None
    # How an add changed it (`ADD`, or `UPDATE` when a language model merged it into a memory).
    event: str | None = None
    # The whole payload, for the history, the access log and exports.
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def memory_from_payload(
    point_id: Any, payload: Mapping[str, Any], score: float | None = None
) -> StoredMemory:
    """Read a memory out of a Qdrant payload (mem0's flat layout)."""
    categories = payload.get("categories") or []
    return StoredMemory(
        id=str(point_id),
        text=str(payload.get("data", "")),
        state=str(payload.get("state") or MemoryState.active),
        app=payload.get("app"),
        categories=[str(c) for c in categories] if isinstance(categories, list) else [str(categories)],
        metadata={k: v for k, v in payload.items() if k not in RESERVED_KEYS},
        user_id=payload.get("user_id"),
        agent_id=payload.get("agent_id"),
        run_id=payload.get("run_id"),
        created_at=payload.get("created_at"),
        updated_at=payload.get("updated_at"),
        expiration_date=payload.get("expiration_date"),
        score=score,
        hash=payload.get("hash"),
        payload=payload,
    )


def is_expired(payload: Mapping[str, Any], today: dt.date) -> bool:
    """Whether mem0 would hide this memory: its expiration date is before today (UTC)."""
    value = payload.get("expiration_date")
    if not value:
        return False
    try:
        return dt.date.fromisoformat(str(value)) < today
    except ValueError:
        return False


def caller_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's metadata without keys that would overwrite mem0's or the server's own."""
    return {k: v for k, v in (metadata or {}).items() if k not in RESERVED_KEYS}


def categories_of(categories: Sequence[str] | None, metadata: Mapping[str, Any] | None) -> list[str]:
    """Categories given as a field or as `metadata.categories` (a list or one name), deduplicated."""
    found: list[str] = list(categories or [])
    extra = (metadata or {}).get("categories")
    if isinstance(extra, str):
        found.append(extra)
    elif isinstance(extra, list):
        found.extend(str(c) for c in extra)
    return list(dict.fromkeys(c.strip() for c in found if c and c.strip()))


def scope_filter(
    owner: Owner,
    states: Sequence[str] | None = None,
    app: str | None = None,
    categories: Sequence[str] | None = None,
) -> qm.Filter:
    """A Qdrant filter for the owner's memories, narrowed by state, app and categories.

    The canary's synthetic memories are left out unless the owner is their very user (the canary
    itself): no listing, export, count or bulk change of anyone else reaches them.
    """
    must: list[qm.Condition] = list(owner.conditions())
    if states:
        must.append(qm.FieldCondition(key="state", match=qm.MatchAny(any=list(states))))
    if app:
        must.append(qm.FieldCondition(key="app", match=qm.MatchValue(value=app)))
    if categories:
        must.append(qm.FieldCondition(key="categories", match=qm.MatchAny(any=list(categories))))
    if isinstance(owner, Scope) and owner.user_id == CANARY_USER_ID:
        return qm.Filter(must=must)
    return qm.Filter(must=must, must_not=[synthetic_condition()])


def backend_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean Qdrant is unreachable or failed, as opposed to a bad request."""
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    errors: list[type[BaseException]] = [
        ResponseHandlingException,
        UnexpectedResponse,
        httpx.HTTPError,
        ConnectionError,
        TimeoutError,
    ]
    with contextlib.suppress(ImportError):
        import grpc

        errors.append(grpc.RpcError)
    return tuple(errors)


class _Unset:
    """An argument not given (as opposed to None, which may mean "clear")."""


UNSET = _Unset()


@dataclass
class MemoryService:
    """The operations behind the REST and MCP APIs."""

    memory: Memory
    client: QdrantClient
    collection: str
    config: ServerConfig = field(default_factory=ServerConfig)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    # Without an LLM, `infer` is always off: the text is stored as given.
    allow_infer: bool = False
    today: Callable[[], dt.date] = field(default=lambda: dt.datetime.now(dt.UTC).date())
    # Files a memory's text under configured categories (with an LLM); None: callers name them.
    categorize: Callable[[str], list[str]] | None = None
    apps: AppRegistry | None = None

    def __post_init__(self) -> None:
        self._errors = backend_errors()
        from mem0.exceptions import ValidationError as Mem0ValidationError

        self._invalid: tuple[type[BaseException], ...] = (ValueError, TypeError, Mem0ValidationError)

    @contextlib.contextmanager
    def _backend(self) -> Iterator[None]:
        try:
            yield
        except self._errors as error:
            self.metrics.qdrant_errors.inc()
            raise BackendUnavailable(type(error).__name__) from error

    def _call(self, kind: str, action: Callable[[], T]) -> T:
        with self._backend():
            try:
                result = action()
            except (MemoryNotFound, InvalidRequest, AppNotFound, AppPaused):
                raise
            except self._invalid as error:
                if isinstance(error.__cause__, self._errors):
                    raise
                raise InvalidRequest(str(getattr(error, "message", None) or error)) from error
        self.metrics.operation(kind)
        return result

    # -- reads --------------------------------------------------------------------------------

    def ready(self) -> bool:
        with self._backend():
            return bool(self.client.collection_exists(self.collection))

    def _points(self, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        records = self.client.retrieve(self.collection, ids=list(ids), with_payload=True, with_vectors=False)
        return {str(r.id): r.payload or {} for r in records}

    def _owned(self, owner: Owner, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """The payloads of these memories; MemoryNotFound unless every one is the owner's."""
        found = self._points(ids)
        missing = [i for i in ids if i not in found or not owner.contains(found[i])]
        if missing:
            raise MemoryNotFound(missing)
        return found

    def scroll(
        self, query: qm.Filter, with_bookkeeping: bool = False, within: Owner | None = None
    ) -> list[qm.Record]:
        """Every point the filter matches (without the history unless asked for), and, given an owner,
        within it: a client's id prefixes are checked here, Qdrant matching exact values only."""
        payload: bool | qm.PayloadSelectorExclude = (
            True if with_bookkeeping else qm.PayloadSelectorExclude(exclude=BOOKKEEPING_KEYS)
        )
        records: list[qm.Record] = []
        offset: qm.ExtendedPointId | None = None
        while True:
            page, offset = self.client.scroll(
                self.collection,
                scroll_filter=query,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=payload,
                with_vectors=False,
            )
            records.extend(page if within is None else [r for r in page if within.contains(r.payload or {})])
            if offset is None:
                return records

    def get(self, owner: Owner, memory_id: str) -> StoredMemory:
        def action() -> StoredMemory:
            return memory_from_payload(memory_id, self._owned(owner, [memory_id])[memory_id])

        return self._call("get", action)

    def list_memories(
        self,
        owner: Owner,
        states: Sequence[str] | None = LISTED_STATES,
        app: str | None = None,
        categories: Sequence[str] | None = None,
        text: str | None = None,
        include_expired: bool = False,
    ) -> list[StoredMemory]:
        """The owner's memories, newest first, narrowed by state, app, categories and a substring."""

        def action() -> list[StoredMemory]:
            records = self.scroll(scope_filter(owner, states, app, categories), within=owner)
            today = self.today()
            needle = text.casefold() if text else None
            memories = [
                memory_from_payload(r.id, r.payload or {})
                for r in records
                if (include_expired or not is_expired(r.payload or {}, today))
                and (needle is None or needle in str((r.payload or {}).get("data", "")).casefold())
            ]
            return newest_first(memories)

        return self._call("list", action)

    def list_filtered(
        self, scope: Scope, filters: Mapping[str, Any], include_expired: bool = False
    ) -> list[StoredMemory]:
        """The scope's listed memories that match mem0 metadata filters, newest first (at most 1000)."""
        self._check_filters(filters)
        effective = {**filters, **scope.as_filters(), "state": [s.value for s in LISTED_STATES]}

        def action() -> list[StoredMemory]:
            found = self.memory.get_all(filters=effective, top_k=MAX_LISTED, show_expired=include_expired)
            return newest_first([self._from_result(item) for item in found["results"]])

        return self._call("list", action)

    @staticmethod
    def _check_filters(filters: Mapping[str, Any] | None) -> None:
        if filters:
            try:
                search_filters(filters)
            except ValueError as error:
                raise InvalidRequest(str(error), loc=("filters",)) from None

    def search(
        self,
        scope: Scope,
        query: str,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        threshold: float | None = None,
        include_expired: bool = False,
    ) -> list[StoredMemory]:
        """Active memories of the scope nearest to the query; `filters` are mem0 metadata filters."""
        self._check_filters(filters)
        # The scope and state come last so that no filter can widen the search beyond the caller.
        effective = {**(filters or {}), **scope.as_filters(), "state": MemoryState.active.value}
        options: dict[str, Any] = {"show_expired": include_expired}
        if threshold is not None:
            options["threshold"] = threshold

        def action() -> list[StoredMemory]:
            found = self.memory.search(query, top_k=limit, filters=effective, **options)["results"]
            return [self._from_result(item) for item in found]

        return self._call("search", action)

    @staticmethod
    def _from_result(item: Mapping[str, Any]) -> StoredMemory:
        # mem0 returns its own keys at the top and the rest of the payload under `metadata`.
        payload = dict(item.get("metadata") or {})
        payload.update({k: item[k] for k in PROMOTED_KEYS if item.get(k) is not None})
        payload["data"] = item.get("memory", "")
        return memory_from_payload(item["id"], payload, score=item.get("score"))

    def categories(self, scope: Scope) -> list[tuple[str, str | None, int]]:
        """Configured and used categories with the caller's count of listed memories in each."""

        def action() -> list[tuple[str, str | None, int]]:
            counts: Counter[str] = Counter()
            for record in self.scroll(scope_filter(scope, LISTED_STATES)):
                counts.update(memory_from_payload(record.id, record.payload or {}).categories)
            described = dict(self.config.described_categories())
            names = list(dict.fromkeys([*self.config.category_names(), *sorted(counts)]))
            return [(name, described.get(name), counts[name]) for name in names]

        return self._call("list", action)

    def stats(self, scope: Scope) -> tuple[int, dict[str, int]]:
        """The caller's number of stored memories (archived too, as OpenMemory counts), and per app."""

        def action() -> tuple[int, dict[str, int]]:
            records = self.scroll(scope_filter(scope, STORED_STATES))
            apps = Counter(str((r.payload or {}).get("app") or "default") for r in records)
            return len(records), dict(sorted(apps.items()))

        return self._call("list", action)

    def history(self, owner: Owner, memory_id: str) -> list[dict[str, Any]]:
        """mem0's history of a memory: its ADD and the text changes since (deleted memories have none)."""

        def action() -> list[dict[str, Any]]:
            return history.history_of(memory_id, self._owned(owner, [memory_id])[memory_id])

        return self._call("get", action)

    def related(self, owner: Owner, memory_id: str) -> list[StoredMemory]:
        """Other memories of the same scope that share a category, the most shared first (OpenMemory's)."""

        def action() -> list[StoredMemory]:
            source = memory_from_payload(memory_id, self._owned(owner, [memory_id])[memory_id])
            if not source.categories:
                return []
            same = {k: v for k in SCOPE_KEYS if (v := getattr(source, k))}
            mine = Scope(**same) if same else None
            if mine is None:
                return []
            query = scope_filter(mine, STORED_STATES, categories=source.categories)
            query.must = [*(query.must or []), *owner.conditions()]
            found = [
                memory_from_payload(r.id, r.payload or {})
                for r in self.scroll(query, within=owner)
                if str(r.id) != memory_id
            ]
            shared = set(source.categories)
            found = newest_first(found)
            return sorted(found, key=lambda m: len(shared & set(m.categories)), reverse=True)

        return self._call("list", action)

    # -- writes -------------------------------------------------------------------------------

    def add(
        self,
        scope: Scope,
        messages: str | Sequence[Mapping[str, Any]],
        metadata: Mapping[str, Any] | None = None,
        categories: Sequence[str] | None = None,
        app: str | None = None,
        infer: bool = False,
        expiration_date: dt.date | None = None,
    ) -> list[StoredMemory]:
        """Store a memory (or, with an LLM and `infer`, the facts it extracts) for the caller.

        Categories named by the caller are kept; otherwise, with a language model, each new memory
        is filed under the configured categories it belongs to. The default expiration follows
        from the categories unless the caller gives a date.
        """
        if not isinstance(messages, str) and len(messages) > MAX_MESSAGES:
            raise InvalidRequest(f"at most {MAX_MESSAGES} messages in one add", loc=("messages",))
        names = categories_of(categories, metadata)
        expires = expiration_date or default_expiration_date(names, self.config.expirations(), self.today())
        payload = {**caller_metadata(metadata), "state": MemoryState.active.value, "categories": names}
        if app:
            payload["app"] = app
        classify = self.categorize if not names else None

        def action() -> list[StoredMemory]:
            if (
                app
                and scope.user_id
                and self.apps is not None
                and not self.apps.is_active(scope.user_id, app)
            ):
                raise AppPaused(app)
            result = self.memory.add(
                messages if isinstance(messages, str) else [dict(m) for m in messages],
                **scope.as_filters(),
                metadata=payload,
                infer=infer and self.allow_infer,
                expiration_date=expires.isoformat() if expires else None,
            )
            events = {str(r["id"]): r.get("event") for r in result["results"]}
            ids = [i for i, event in events.items() if event in ("ADD", "UPDATE")]
            points = self._points(ids) if ids else {}
            added = [replace(memory_from_payload(i, points[i]), event=events[i]) for i in ids if i in points]
            if classify is not None:
                added = self._file_under_categories(added, classify, expiration_date)
            return added

        return self._call("add", action)

    def _file_under_categories(
        self,
        added: list[StoredMemory],
        classify: Callable[[str], list[str]],
        expiration_date: dt.date | None,
    ) -> list[StoredMemory]:
        """Ask the language model for each new memory's categories; set them and their expiration."""
        operations: list[qm.UpdateOperation] = []
        filed: list[StoredMemory] = []
        for memory in added:
            try:
                names = classify(memory.text)
            except Exception as error:  # a model failure must not lose the memory just stored
                self.metrics.categorization_failures.inc()
                log.warning("categorization failed: error=%s", type(error).__name__)
                names = []
            if not names:
                filed.append(memory)
                continue
            expires = expiration_date or default_expiration_date(
                names, self.config.expirations(), self.today()
            )
            expires_on = expires.isoformat() if expires else None
            changes: dict[str, Any] = {"categories": names, "expiration_date": expires_on}
            operations.append(
                qm.SetPayloadOperation(set_payload=qm.SetPayload(payload=changes, points=[memory.id]))
            )
            filed.append(
                replace(
                    memory,
                    categories=names,
                    expiration_date=expires_on,
                    payload={**memory.payload, **changes},
                )
            )
        if operations:
            self.client.batch_update_points(self.collection, update_operations=operations, wait=True)
        return filed

    def update(
        self,
        owner: Owner,
        memory_id: str,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        expiration_date: dt.date | _Unset | None = UNSET,
    ) -> StoredMemory:
        """Change a memory's text (re-embedded by mem0), merge metadata into it, set or clear its
        expiration date; a text change is kept in its history."""

        def action() -> StoredMemory:
            current = self._owned(owner, [memory_id])[memory_id]
            extra = caller_metadata(metadata) if metadata is not None else {}
            if text is not None and text != current.get("data"):
                extra.update(history.with_update(current, text))
            options: dict[str, Any] = {}
            if not isinstance(expiration_date, _Unset):
                options["expiration_date"] = expiration_date.isoformat() if expiration_date else None
            if text is not None or extra or options:
                self.memory.update(memory_id, text=text, metadata=extra or None, **options)
            return memory_from_payload(memory_id, self._points([memory_id])[memory_id])

        return self._call("update", action)

    def delete(self, owner: Owner, memory_ids: Sequence[str]) -> int:
        """Delete these memories, all or none: every id must be the owner's."""

        def action() -> int:
            ids = list(dict.fromkeys(memory_ids))
            self._owned(owner, ids)
            self.client.delete(self.collection, points_selector=qm.PointIdsList(points=list(ids)), wait=True)
            return len(ids)

        return self._call("delete", action)

    def delete_all(self, scope: Scope, app: str | None = None) -> int:
        """Delete every memory of the scope (of one app, if given), in one filtered call."""

        def action() -> int:
            query = scope_filter(scope, app=app)
            count = self.client.count(self.collection, count_filter=query, exact=True).count
            self.client.delete(self.collection, points_selector=qm.FilterSelector(filter=query), wait=True)
            return count

        return self._call("delete", action)

    def erase(self, subject: Scope) -> Erased:
        """Erase every memory of one subject (exactly one of user, agent and run id), in every state and
        app, with what was derived from them (mem0's entities, the user's app states); what is left of
        the subject is counted again after (`Erased.remaining`)."""
        ids = subject.as_filters()
        if len(ids) != 1:
            raise InvalidRequest("give exactly one of user_id, agent_id and run_id")
        ((key, value),) = ids.items()
        return self._call("delete", lambda: erase_subject(self.client, self.collection, key, value))

    def set_state(self, owner: Owner, memory_ids: Sequence[str], state: MemoryState) -> int:
        """Archive, pause or reactivate these memories, all or none."""

        def action() -> int:
            ids = list(dict.fromkeys(memory_ids))
            self._owned(owner, ids)
            self.client.set_payload(
                self.collection, payload=self._state_payload(state), points=list(ids), wait=True
            )
            return len(ids)

        return self._call("state", action)

    def set_state_where(
        self,
        scope: Scope,
        state: MemoryState,
        app: str | None = None,
        categories: Sequence[str] | None = None,
    ) -> int:
        """Change the state of every memory of the caller in an app and/or categories (or all)."""

        def action() -> int:
            query = scope_filter(scope, app=app, categories=categories)
            count = self.client.count(self.collection, count_filter=query, exact=True).count
            self.client.set_payload(
                self.collection, payload=self._state_payload(state), points=query, wait=True
            )
            return count

        return self._call("state", action)

    @staticmethod
    def _state_payload(state: MemoryState) -> dict[str, str]:
        return {"state": state.value, "state_changed_at": dt.datetime.now(dt.UTC).isoformat()}

    def record_access(self, memories: Sequence[StoredMemory], app: str, kind: str) -> None:
        """Log that `app` searched or listed these memories. Never fails the read it follows: a memory
        deleted meanwhile, or Qdrant failing here, costs a log entry only."""
        if not memories:
            return
        at = history.naive_utc(history.now_iso())
        operations: list[qm.UpdateOperation] = [
            qm.SetPayloadOperation(
                set_payload=qm.SetPayload(
                    payload=history.with_access(m.payload, app, kind, at), points=[m.id]
                )
            )
            for m in memories
        ]
        try:
            self.client.batch_update_points(self.collection, update_operations=operations, wait=True)
        except Exception as error:  # bookkeeping only
            log.warning("access log not written: error=%s", type(error).__name__)


def newest_first(memories: list[StoredMemory]) -> list[StoredMemory]:
    return sorted(memories, key=lambda m: (m.created_at or "", m.id), reverse=True)
