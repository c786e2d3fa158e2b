"""Request and response bodies: OpenMemory's `/api/v1` shapes and mem0's REST shapes."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from memory_operator.server.limits import (
    MAX_MEMORY_IDS,
    MAX_MESSAGES,
    MAX_NAMES,
    Filters,
    Metadata,
    Name,
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


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- OpenMemory ----------------------------------------------------------------------------------


class CreateMemoryRequest(Body):
    user_id: EntityId
    text: Text
    metadata: Metadata = Field(default_factory=dict)
    infer: StrictBool = True
    """Extract facts with the LLM; ignored (text stored as given) when the server has no LLM."""
    app: Name = "openmemory"
    categories: Names | None = None
    """Also read from `metadata.categories`. Categories set the default expiration date."""
    expiration_date: IsoDate | None = None
    """`YYYY-MM-DD`; defaults from the categories (e.g. incident 90 days, temporary 7 days)."""
    agent_id: EntityId | None = None
    run_id: EntityId | None = None


class UpdateMemoryRequest(Body):
    user_id: EntityId
    memory_content: Text | None = None
    metadata: Metadata | None = None


class DeleteMemoriesRequest(Body):
    memory_ids: MemoryIds
    user_id: EntityId


class ArchiveMemoriesRequest(Body):
    memory_ids: MemoryIds
    user_id: EntityId | None = None
    """The user; may be given as a query parameter instead, as OpenMemory takes it."""


class PauseMemoriesRequest(Body):
    user_id: EntityId
    memory_ids: Annotated[list[UUID], Field(max_length=MAX_MEMORY_IDS)] | None = None
    app_id: Name | None = None
    """The app (its name) whose memories change state, with `all_for_app`."""
    all_for_app: StrictBool = False
    category_ids: Names | None = None
    """Category names whose memories change state."""
    global_pause: StrictBool = False
    """Every memory of the user."""
    state: MemoryState = MemoryState.paused
    """The new state: `paused` by default, `active` to resume."""


SortColumn = Literal["created_at", "memory", "app_name"]
SortDirection = Literal["asc", "desc"]


class FilterMemoriesRequest(Body):
    user_id: EntityId
    page: Page = 1
    size: PageSize = 10
    search_query: SearchText | None = None
    app_ids: Names | None = None
    category_ids: Names | None = None
    sort_column: SortColumn | None = None
    sort_direction: SortDirection | None = None
    from_date: EpochSeconds | None = None
    to_date: EpochSeconds | None = None
    show_archived: StrictBool = False


class MemoryResponse(BaseModel):
    id: str
    content: str
    created_at: int | None
    """Seconds since the epoch, as OpenMemory returns it."""
    updated_at: int | None = None
    state: str
    app_id: str | None
    app_name: str | None
    categories: list[str]
    metadata_: dict[str, Any] | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    expiration_date: str | None = None
    score: float | None = None


class MemoryPage(BaseModel):
    items: list[MemoryResponse]
    total: int
    page: int
    size: int
    pages: int


class MessageResponse(BaseModel):
    message: str


class ErrorResponse(BaseModel):
    detail: str


class NotFoundResponse(BaseModel):
    detail: str
    memory_ids: list[str] | None = None
    """The requested ids that are not the caller's memories (absent when no route matched)."""


class CategoryResponse(BaseModel):
    name: str
    description: str | None = None
    count: int


class CategoriesResponse(BaseModel):
    categories: list[CategoryResponse]
    total: int


class AppStats(BaseModel):
    name: str
    total_memories: int


class StatsResponse(BaseModel):
    total_memories: int
    total_apps: int
    apps: list[AppStats]


# -- mem0 ----------------------------------------------------------------------------------------


class Message(Body):
    role: Literal["user", "assistant", "system"]
    content: Text
    name: Name | None = None


class Mem0CreateRequest(Body):
    messages: Text | Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    """A text, or 1 to 32 messages (each stored as a memory)."""
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    run_id: EntityId | None = None
    metadata: Metadata = Field(default_factory=dict)
    infer: StrictBool = True
    categories: Names | None = None
    expiration_date: IsoDate | None = None
    app: Name | None = None


class Mem0SearchRequest(Body):
    query: Text
    user_id: EntityId | None = None
    agent_id: EntityId | None = None
    run_id: EntityId | None = None
    filters: Filters | None = None
    """mem0 metadata filters (`{"type": "incident"}`, `{"priority": {"gte": 2}}`, AND/OR/NOT)."""
    top_k: PageSize = 10


class Mem0Memory(BaseModel):
    id: str
    memory: str
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


class Mem0Results(BaseModel):
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


def mem0_view(memory: StoredMemory) -> Mem0Memory:
    return Mem0Memory(
        id=memory.id,
        memory=memory.text,
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
