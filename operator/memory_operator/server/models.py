"""Request and response bodies: OpenMemory's `/api/v1` shapes, mem0's REST server's, and the shapes
mem0's `MemoryClient` sends and reads (`/v1`, `/v2`, `/v3`).

Bodies read as upstream's servers read them: unknown fields are ignored and a null is the same as
an absent field (except where null means "clear"). What is read is still bounded and validated:
scope ids follow their grammar, texts, metadata, filters and lists their limits.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)

from memory_operator.server.limits import (
    MAX_MEMORY_IDS,
    MAX_MESSAGES,
    MAX_NAMES,
    Metadata,
    Name,
    ScopedFilters,
    Text,
    UnicodeText,
)
from memory_operator.server.scope_id import ScopeId
from memory_operator.server.store import MemoryState, StoredMemory

# Scope ids are refused at the edge, with the field's place in the request, before a Scope is built.
EntityId = ScopeId
MemoryIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_MEMORY_IDS)]
Names = Annotated[list[Name], Field(max_length=MAX_NAMES)]
SearchText = Annotated[UnicodeText, Field(max_length=1000)]


def _json_integer(value: object) -> object:
    """A JSON integer: `3` or `3.0` (JSON Schema's integers), not `"3"`, `true` or `3.5`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("expected an integer")
    return int(value)


def _json_number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    return value


def _date_text(value: object) -> object:
    """JSON has no date type: a date comes as `YYYY-MM-DD` text, never as a number."""
    if not isinstance(value, str | dt.date):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


# Booleans, integers and dates exactly as the document declares them: no lax coercion of 0 to
# false, of "3" to 3, or of a number to a date.
IsoDate = Annotated[dt.date, BeforeValidator(_date_text)]
Page = Annotated[int, Field(ge=1), BeforeValidator(_json_integer)]
PageSize = Annotated[int, Field(ge=1, le=100), BeforeValidator(_json_integer)]
EpochSeconds = Annotated[int, Field(ge=0), BeforeValidator(_json_integer)]
Threshold = Annotated[float, Field(ge=0, le=1), BeforeValidator(_json_number)]


def _iso_moment(value: str) -> str:
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


DateText = Annotated[
    str,
    Field(max_length=64, description="An ISO 8601 date or date and time."),
    AfterValidator(_iso_moment),
]


class Answer(BaseModel):
    """A response body (field docstrings are the document's descriptions)."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class Body(BaseModel):
    """A request body read as upstream reads one: unknown fields ignored, null the same as absent."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)
    # Fields where an explicit null means something ("clear it"), not "absent".
    keeps_null: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls.keeps_null}
        return data


class ScopedBody(Body):
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    run_id: EntityId | None = None


# -- OpenMemory ----------------------------------------------------------------------------------


class CreateMemoryRequest(Body):
    user_id: EntityId
    text: Text
    metadata: Metadata | None = None
    infer: StrictBool | None = True
    """Extract facts with the language model (the default, as upstream); ignored (text stored as
    given) when the server has no language model."""
    app: Name | None = "openmemory"
    """The app adding the memory; a paused app may not (403)."""
    categories: Names | None = None
    """Also read from `metadata.categories`. Without any, a language model (when configured) files
    the memory under the configured categories. Categories set the default expiration date."""
    expiration_date: IsoDate | None = None
    """`YYYY-MM-DD`; defaults from the categories (e.g. incident 90 days, temporary 7 days)."""
    agent_id: EntityId | None = None
    run_id: EntityId | None = None


class UpdateMemoryRequest(Body):
    user_id: EntityId | None = None
    """The owner; without it, any memory the key reaches."""
    memory_content: Text | None = None
    metadata: Metadata | None = None


class DeleteMemoriesRequest(Body):
    memory_ids: MemoryIds
    user_id: EntityId


class ArchiveMemoriesRequest(Body):
    memory_ids: MemoryIds
    user_id: EntityId | None = None
    """The user; may be given as a query parameter instead, as OpenMemory takes it."""


# OpenMemory's archive takes a bare JSON list of ids; an object with `memory_ids` is read too.
ArchiveBody = MemoryIds | ArchiveMemoriesRequest


class PauseMemoriesRequest(Body):
    user_id: EntityId
    memory_ids: Annotated[list[UUID], Field(max_length=MAX_MEMORY_IDS)] | None = None
    app_id: Name | None = None
    """The app (its name) whose memories change state."""
    all_for_app: StrictBool | None = False
    """Read for OpenMemory's clients; `app_id` alone already selects the app's memories."""
    category_ids: Names | None = None
    """Category names whose memories change state."""
    global_pause: StrictBool | None = False
    """Every memory of the user."""
    state: MemoryState | None = MemoryState.paused
    """The new state: `paused` by default, `active` to resume, `archived`."""


SortColumn = Literal["created_at", "memory", "app_name"]
SortDirection = Literal["asc", "desc"]


class FilterMemoriesRequest(Body):
    user_id: EntityId
    page: Page | None = 1
    size: PageSize | None = 10
    search_query: SearchText | None = None
    app_ids: Names | None = None
    """App names (an app's id is its name)."""
    category_ids: Names | None = None
    """Category names (a category's id is its name)."""
    sort_column: SortColumn | None = None
    sort_direction: SortDirection | None = None
    from_date: EpochSeconds | None = None
    to_date: EpochSeconds | None = None
    show_archived: StrictBool | None = False


class MemoryResponse(Answer):
    id: str
    content: str
    created_at: int | None
    """Seconds since the epoch, as OpenMemory returns it."""
    updated_at: int | None = None
    state: str
    app_id: str | None
    """The app's name (its id here)."""
    app_name: str | None
    categories: list[str]
    metadata_: dict[str, Any] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    expiration_date: str | None = None
    score: float | None = None


class MemoryDetail(MemoryResponse):
    text: str
    """The memory's text, as OpenMemory's `GET /api/v1/memories/{memory_id}` names it (also `content`)."""


class MemoryPage(Answer):
    items: list[MemoryResponse]
    total: int
    page: int
    size: int
    pages: int


class MessageResponse(Answer):
    message: str


class StatusResponse(Answer):
    status: str
    message: str


class ErrorResponse(Answer):
    detail: str


class NotFoundResponse(Answer):
    detail: str
    memory_ids: list[str] | None = None
    """The requested ids that are not the caller's memories (absent when no route matched)."""


class CategoryResponse(Answer):
    id: str
    """The category's name (its id here)."""
    name: str
    description: str | None = None
    count: int
    created_at: str | None = None
    updated_at: str | None = None


class CategoriesResponse(Answer):
    categories: list[CategoryResponse]
    total: int


class AppStats(Answer):
    id: str
    name: str
    is_active: bool = True
    total_memories: int


class StatsResponse(Answer):
    total_memories: int
    total_apps: int
    apps: list[AppStats]


class AppItem(Answer):
    id: str
    """The app's name (its id here)."""
    name: str
    is_active: bool
    total_memories_created: int
    total_memories_accessed: int


class AppListResponse(Answer):
    total: int
    page: int
    page_size: int
    apps: list[AppItem]


class AppDetailResponse(Answer):
    is_active: bool
    total_memories_created: int
    total_memories_accessed: int
    first_accessed: str | None
    last_accessed: str | None


class AppMemory(Answer):
    id: str
    content: str
    created_at: str | None
    state: str
    app_id: str | None
    app_name: str | None
    categories: list[str]
    metadata_: dict[str, Any] | None = None


class AppMemoriesResponse(Answer):
    total: int
    page: int
    page_size: int
    memories: list[AppMemory]


class AccessedMemory(Answer):
    memory: AppMemory
    access_count: int


class AppAccessedResponse(Answer):
    total: int
    page: int
    page_size: int
    memories: list[AccessedMemory]


class AccessLogEntry(Answer):
    id: str
    memory_id: str
    app_id: str | None
    app_name: str | None
    accessed_at: str | None
    """UTC, without an offset (OpenMemory's UI appends `Z`)."""
    access_type: str | None
    metadata_: dict[str, Any] | None = None


class AccessLogResponse(Answer):
    total: int
    page: int
    page_size: int
    logs: list[AccessLogEntry]


class ModelView(Answer):
    provider: str
    config: dict[str, Any]


class Mem0ConfigView(Answer):
    llm: ModelView | None
    embedder: ModelView


class OpenMemoryConfigView(Answer):
    custom_instructions: str | None


class ConfigResponse(Answer):
    """The server's configuration as OpenMemory's settings page reads it (no key, never writable here:
    the MemoryStore or the server's flags configure it)."""

    openmemory: OpenMemoryConfigView
    mem0: Mem0ConfigView


class ExportRequest(Body):
    user_id: EntityId | None = None
    """The user whose memories are exported; without it, every memory the key reaches."""
    app_id: Name | None = None
    from_date: EpochSeconds | None = None
    to_date: EpochSeconds | None = None


class ImportResponse(Answer):
    message: str
    imported: int
    skipped: int
    renamed: int
    """Records whose id belonged to another scope's memory, imported under a new id."""


# -- mem0 ----------------------------------------------------------------------------------------


class Message(Body):
    role: Literal["user", "assistant", "system"]
    content: Text
    name: Name | None = None


Messages = Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]


class Mem0CreateRequest(ScopedBody):
    messages: Text | Messages
    """A text, or 1 to 32 messages (each stored as a memory unless a language model extracts facts)."""
    metadata: Metadata | None = None
    infer: StrictBool | None = True
    categories: Names | None = None
    expiration_date: IsoDate | None = None
    app: Name | None = None


class Mem0UpdateRequest(Body):
    keeps_null: ClassVar[frozenset[str]] = frozenset({"expiration_date"})

    text: Text | None = None
    metadata: Metadata | None = None
    """Merged into the memory's metadata."""
    expiration_date: IsoDate | None = None
    """`YYYY-MM-DD`; null clears it; absent keeps it."""


class Mem0SearchRequest(ScopedBody):
    query: Text
    filters: ScopedFilters | None = None
    top_k: PageSize | None = 10
    threshold: Threshold | None = None
    """Lowest similarity score returned (mem0's default 0.1)."""
    show_expired: StrictBool | None = False


class Mem0Memory(Answer):
    id: str
    memory: str
    hash: str | None = None
    metadata: dict[str, Any] | None = None
    categories: list[str] = Field(default_factory=list)
    state: str
    app: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    expiration_date: str | None = None
    score: float | None = None
    event: str | None = None
    """How an add changed the memory: `ADD` (or `UPDATE`, when a language model merged facts)."""


class Mem0Results(Answer):
    results: list[Mem0Memory]


class Mem0UpdateResponse(Mem0Memory):
    message: str = "Memory updated successfully!"


class HistoryEntry(Answer):
    id: str
    memory_id: str
    old_memory: str | None
    new_memory: str | None
    event: str
    created_at: str | None
    updated_at: str | None
    is_deleted: bool
    actor_id: str | None = None
    role: str | None = None


# -- mem0's MemoryClient (the platform's paths) ----------------------------------------------------


class PingResponse(Answer):
    status: str
    message: str
    org_id: str | None = None
    project_id: str | None = None
    user_email: str | None = None


class PlatformAddRequest(ScopedBody):
    messages: Text | Messages
    filters: ScopedFilters | None = None
    """The scope (`{"user_id": ...}`), as the v3 client sends it; top-level ids are read too."""
    app_id: Name | None = None
    """The app adding the memory."""
    metadata: Metadata | None = None
    infer: StrictBool | None = True
    categories: Names | None = None
    expiration_date: IsoDate | None = None


class PlatformListRequest(ScopedBody):
    filters: ScopedFilters | None = None
    categories: Names | None = None
    """Only memories in any of these categories."""
    start_date: DateText | None = None
    end_date: DateText | None = None
    show_expired: StrictBool | None = False


class PlatformSearchRequest(ScopedBody):
    query: Text
    filters: ScopedFilters | None = None
    top_k: PageSize | None = 10
    threshold: Threshold | None = None
    categories: Names | None = None
    show_expired: StrictBool | None = False


class PlatformPage(Answer):
    count: int
    next: str | None
    previous: str | None
    results: list[Mem0Memory]


# -- conversions ---------------------------------------------------------------------------------


def epoch_seconds(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    try:
        return int(dt.datetime.fromisoformat(timestamp).timestamp())
    except ValueError:
        return None


def openmemory_view(memory: StoredMemory) -> MemoryResponse:
    return MemoryResponse(
        id=memory.id,
        content=memory.text,
        created_at=epoch_seconds(memory.created_at),
        updated_at=epoch_seconds(memory.updated_at),
        state=memory.state,
        app_id=memory.app,
        app_name=memory.app,
        categories=memory.categories,
        metadata_=memory.metadata or None,
        user_id=memory.user_id,
        agent_id=memory.agent_id,
        run_id=memory.run_id,
        expiration_date=memory.expiration_date,
        score=memory.score,
    )


def openmemory_detail(memory: StoredMemory) -> MemoryDetail:
    return MemoryDetail(**openmemory_view(memory).model_dump(), text=memory.text)


def app_memory_view(memory: StoredMemory) -> AppMemory:
    return AppMemory(
        id=memory.id,
        content=memory.text,
        created_at=memory.created_at,
        state=memory.state,
        app_id=memory.app,
        app_name=memory.app,
        categories=memory.categories,
        metadata_=memory.metadata or None,
    )


def mem0_view(memory: StoredMemory) -> Mem0Memory:
    return Mem0Memory(
        id=memory.id,
        memory=memory.text,
        hash=memory.hash,
        metadata=memory.metadata or None,
        categories=memory.categories,
        state=memory.state,
        app=memory.app,
        user_id=memory.user_id,
        agent_id=memory.agent_id,
        run_id=memory.run_id,
        created_at=memory.created_at,
        updated_at=memory.updated_at,
        expiration_date=memory.expiration_date,
        score=memory.score,
        event=memory.event,
    )


def access_log_view(memory_id: str, entry: dict[str, Any]) -> AccessLogEntry:
    return AccessLogEntry(
        id=str(entry.get("id")),
        memory_id=memory_id,
        app_id=entry.get("app"),
        app_name=entry.get("app"),
        accessed_at=entry.get("at"),
        access_type=entry.get("type"),
        metadata_=None,
    )


def page_of(memories: list[StoredMemory], page: int, size: int) -> MemoryPage:
    """One page, numbered from 1, as fastapi-pagination's `Page` (which OpenMemory returns)."""
    start = (page - 1) * size
    return MemoryPage(
        items=[openmemory_view(m) for m in memories[start : start + size]],
        total=len(memories),
        page=page,
        size=size,
        pages=math.ceil(len(memories) / size) if memories else 0,
    )


def narrowed(
    memories: list[StoredMemory],
    from_date: int | None = None,
    to_date: int | None = None,
    sort_column: SortColumn | None = None,
    sort_direction: SortDirection | None = None,
) -> list[StoredMemory]:
    """Memories created within [from_date, to_date] (epoch seconds), sorted (newest first by default)."""

    def created(m: StoredMemory) -> int:
        return epoch_seconds(m.created_at) or 0

    kept = [
        m
        for m in memories
        if (from_date is None or created(m) >= from_date) and (to_date is None or created(m) <= to_date)
    ]
    column = sort_column or "created_at"
    descending = (sort_direction or ("desc" if column == "created_at" else "asc")) == "desc"
    keys: dict[str, Any] = {
        "created_at": lambda m: m.created_at or "",
        "memory": lambda m: m.text.casefold(),
        "app_name": lambda m: (m.app or "").casefold(),
    }
    return sorted(kept, key=keys[column], reverse=descending)


def within_dates(memories: list[StoredMemory], start: str | None, end: str | None) -> list[StoredMemory]:
    """Memories created on or after `start` and on or before `end` (ISO dates or times, UTC if naive)."""

    def moment(text: str, end_of_day: bool) -> dt.datetime:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if end_of_day and len(text) == 10:
            value += dt.timedelta(days=1, microseconds=-1)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    low = moment(start, False) if start else None
    high = moment(end, True) if end else None

    def created(m: StoredMemory) -> dt.datetime | None:
        try:
            value = dt.datetime.fromisoformat(m.created_at or "")
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    kept = []
    for memory in memories:
        when = created(memory)
        if when is None:
            continue
        if (low is None or when >= low) and (high is None or when <= high):
            kept.append(memory)
    return kept


def access_entries_page(
    memory_id: str, entries: list[dict[str, Any]], page: int, size: int
) -> AccessLogResponse:
    start = (page - 1) * size
    return AccessLogResponse(
        total=len(entries),
        page=page,
        page_size=size,
        logs=[access_log_view(memory_id, e) for e in entries[start : start + size]],
    )
