"""mem0's REST API: its self-hosted server's routes (`/memories`, `/search`) and the paths mem0's
official `MemoryClient` calls (`/v1/ping/`, `/v1/memories/...`, `/v2/memories/...`, `/v3/memories/...`).

Scopes come as top-level ids or inside `filters` (mem0's newer clients); a request by memory id
without any acts on everything its key reaches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import FastAPI, Query, Request

from memory_operator.server import models as m
from memory_operator.server.auth import Caller
from memory_operator.server.deps import (
    MEMORY_ID,
    READ,
    READ_BODY,
    READ_ID,
    WRITE_BODY,
    WRITE_ID,
    WRITE_IDS,
    EntityId,
    ReadCaller,
    ServiceDep,
    WriteCaller,
)
from memory_operator.server.limits import scope_in_filters
from memory_operator.server.store import SCOPE_KEYS, UNSET, InvalidRequest, MemoryService, StoredMemory
from memory_operator.server.store import Scope as MemoryScope

LIST_LIMIT = 1000
# What `GET /v1/ping/` names as the key's organisation and project (`MemoryClient` requires both).
ORG_ID = "self-hosted"
PROJECT_ID = "default"
PlatformPageSize = Annotated[int | None, Query(ge=1, le=LIST_LIMIT)]
PlatformPageNumber = Annotated[int | None, Query(ge=1)]
AppFilter = Annotated[str | None, Query(min_length=1, max_length=253, description="an app's name")]


def scope_of(
    given: Mapping[str, str | None], filters: Mapping[str, Any] | None
) -> tuple[MemoryScope, dict[str, Any]]:
    """The request's scope, from top-level ids and `filters`, and the filters left (with `app`)."""
    try:
        ids, rest = scope_in_filters(filters or {})
    except ValueError as error:
        raise InvalidRequest(str(error), loc=("filters",)) from None
    for key in SCOPE_KEYS:
        value = given.get(key)
        if value is None:
            continue
        if ids.get(key, value) != value:
            raise InvalidRequest(f"{key} differs between the body and its filters", loc=(key,))
        ids[key] = value
    return MemoryScope(**ids), rest


def _ids(body: m.ScopedBody) -> dict[str, str | None]:
    return {key: getattr(body, key) for key in SCOPE_KEYS}


def _scope_or_none(user_id: str | None, agent_id: str | None, run_id: str | None) -> MemoryScope | None:
    if user_id is None and agent_id is None and run_id is None:
        return None
    return MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id)


def _messages(messages: str | list[m.Message]) -> str | list[dict[str, Any]]:
    return messages if isinstance(messages, str) else [x.model_dump(exclude_none=True) for x in messages]


def _results(memories: list[StoredMemory]) -> m.Mem0Results:
    return m.Mem0Results(results=[m.mem0_view(x) for x in memories])


def _with_categories(filters: dict[str, Any], categories: list[str] | None) -> dict[str, Any]:
    if not categories:
        return filters
    wanted = {"categories": {"in": list(categories)}}
    return {"AND": [filters, wanted]} if filters else wanted


def _add(
    service: MemoryService,
    caller: Caller,
    body: m.Mem0CreateRequest | m.PlatformAddRequest,
    app: str | None,
) -> m.Mem0Results:
    filters = body.filters if isinstance(body, m.PlatformAddRequest) else None
    # An add's filters name the scope only; the platform's `app_id` there names the app.
    scope, rest = scope_of(_ids(body), filters)
    caller.within(scope)
    app_name = app or (rest.get("app") if isinstance(rest.get("app"), str) else None)
    added = service.add(
        scope,
        _messages(body.messages),
        metadata=body.metadata,
        categories=body.categories,
        app=app_name,
        infer=body.infer is not False,
        expiration_date=body.expiration_date,
    )
    return _results(added)


def _search(
    service: MemoryService, caller: Caller, body: m.Mem0SearchRequest | m.PlatformSearchRequest
) -> m.Mem0Results:
    scope, rest = scope_of(_ids(body), body.filters)
    caller.within(scope)
    if isinstance(body, m.PlatformSearchRequest):
        rest = _with_categories(rest, body.categories)
    found = service.search(
        scope,
        body.query,
        limit=body.top_k or 10,
        filters=rest or None,
        threshold=body.threshold,
        include_expired=body.show_expired is True,
    )
    return _results(found)


def _update(
    service: MemoryService, caller: Caller, memory_id: UUID, body: m.Mem0UpdateRequest
) -> m.Mem0UpdateResponse:
    expiration = body.expiration_date if "expiration_date" in body.model_fields_set else UNSET
    updated = service.update(
        caller.within(None),
        str(memory_id),
        text=body.text,
        metadata=body.metadata,
        expiration_date=expiration,
    )
    return m.Mem0UpdateResponse(**m.mem0_view(updated).model_dump())


def _history(service: MemoryService, caller: Caller, memory_id: UUID) -> list[m.HistoryEntry]:
    return [m.HistoryEntry(**entry) for entry in service.history(caller.within(None), str(memory_id))]


def mem0_server_routes(router: FastAPI) -> None:
    @router.post("/memories", tags=["mem0"], responses=WRITE_BODY)
    def mem0_add(service: ServiceDep, caller: WriteCaller, body: m.Mem0CreateRequest) -> m.Mem0Results:
        """mem0's add: a text or a list of messages, scoped by user, agent and/or run.

        At least one of `user_id`, `agent_id`, `run_id` is required. With a language model and
        `infer` (the default), facts are extracted; each result names its `event`.
        """
        return _add(service, caller, body, body.app)

    @router.get("/memories", tags=["mem0"], responses=READ)
    def mem0_list(
        service: ServiceDep,
        caller: ReadCaller,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
        top_k: PlatformPageSize = None,
        show_expired: bool = False,
    ) -> m.Mem0Results:
        """Every active or paused memory of the scope, newest first; without a scope, every one the
        key reaches (as mem0's server lists all for an admin key), at most `top_k`."""
        owner = caller.within(_scope_or_none(user_id, agent_id, run_id))
        found = service.list_memories(owner, include_expired=show_expired)
        return _results(found[: top_k or LIST_LIMIT])

    @router.delete("/memories", tags=["mem0"], responses=WRITE_ID)
    def mem0_delete_all(
        service: ServiceDep,
        caller: WriteCaller,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.MessageResponse:
        """Delete every memory of the scope (at least one of user_id, agent_id, run_id)."""
        scope = MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id)
        caller.within(scope)
        service.delete_all(scope)
        return m.MessageResponse(message="All relevant memories deleted")

    @router.post("/search", tags=["mem0"], responses=READ_BODY)
    def mem0_search(service: ServiceDep, caller: ReadCaller, body: m.Mem0SearchRequest) -> m.Mem0Results:
        """Semantic search over active memories of the scope, with mem0 metadata filters.

        The scope is `user_id`, `agent_id`, `run_id` at the top level or in `filters` (mem0's
        current form); at least one is required. `threshold` is the lowest score returned.
        """
        return _search(service, caller, body)

    @router.get(f"/memories/{MEMORY_ID}", tags=["mem0"], responses=READ_ID)
    def mem0_get(
        service: ServiceDep,
        caller: ReadCaller,
        memory_id: UUID,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.Mem0Memory:
        """One memory: of the scope when one is given, else any the key reaches."""
        owner = caller.within(_scope_or_none(user_id, agent_id, run_id))
        return m.mem0_view(service.get(owner, str(memory_id)))

    @router.put(f"/memories/{MEMORY_ID}", tags=["mem0"], responses=WRITE_IDS)
    def mem0_update(
        service: ServiceDep, caller: WriteCaller, memory_id: UUID, body: m.Mem0UpdateRequest
    ) -> m.Mem0UpdateResponse:
        """Change a memory's text (kept in its history), merge metadata, set or clear (null) its
        expiration date."""
        return _update(service, caller, memory_id, body)

    @router.get(f"/memories/{MEMORY_ID}/history", tags=["mem0"], responses=READ_ID)
    def mem0_history(service: ServiceDep, caller: ReadCaller, memory_id: UUID) -> list[m.HistoryEntry]:
        """A memory's history: its ADD and its last ten text changes (a deleted memory has none)."""
        return _history(service, caller, memory_id)

    @router.delete(f"/memories/{MEMORY_ID}", tags=["mem0"], responses=WRITE_ID)
    def mem0_delete(
        service: ServiceDep,
        caller: WriteCaller,
        memory_id: UUID,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.MessageResponse:
        """Delete one memory: of the scope when one is given, else any the key reaches."""
        owner = caller.within(_scope_or_none(user_id, agent_id, run_id))
        service.delete(owner, [str(memory_id)])
        return m.MessageResponse(message="Memory deleted successfully!")


def _page(
    request: Request, memories: list[StoredMemory], page: int | None, size: int | None
) -> m.PlatformPage:
    """The platform's pagination: every memory when no page is asked for."""
    if page is None and size is None:
        return m.PlatformPage(
            count=len(memories), next=None, previous=None, results=[m.mem0_view(x) for x in memories]
        )
    number, size = page or 1, size or 100
    start = (number - 1) * size
    shown = memories[start : start + size]

    def link(n: int) -> str:
        return str(request.url.include_query_params(page=n, page_size=size))

    return m.PlatformPage(
        count=len(memories),
        next=link(number + 1) if start + size < len(memories) else None,
        previous=link(number - 1) if number > 1 else None,
        results=[m.mem0_view(x) for x in shown],
    )


def _listed(service: MemoryService, caller: Caller, body: m.PlatformListRequest) -> list[StoredMemory]:
    scope, rest = scope_of(_ids(body), body.filters)
    caller.within(scope)
    expired = body.show_expired is True
    found = (
        service.list_filtered(scope, rest, expired)
        if rest
        else service.list_memories(scope, include_expired=expired)
    )
    if body.categories:
        wanted = set(body.categories)
        found = [x for x in found if wanted & set(x.categories)]
    return (
        m.within_dates(found, body.start_date, body.end_date) if body.start_date or body.end_date else found
    )


def platform_routes(router: FastAPI) -> None:
    @router.get("/v1/ping/", tags=["mem0 client"], responses=READ)
    def ping(caller: ReadCaller) -> m.PingResponse:
        """What `MemoryClient` calls first to check its key. The client wants an organisation and a
        project; a self-hosted server has one of each, with fixed names."""
        return m.PingResponse(status="ok", message="API key is valid", org_id=ORG_ID, project_id=PROJECT_ID)

    def add(service: ServiceDep, caller: WriteCaller, body: m.PlatformAddRequest) -> m.Mem0Results:
        """`MemoryClient.add`: messages (or a text) for the scope in `filters` or at the top level;
        the result lists each memory with its `event`. `app_id` names the app."""
        return _add(service, caller, body, body.app_id)

    def search(service: ServiceDep, caller: ReadCaller, body: m.PlatformSearchRequest) -> m.Mem0Results:
        """`MemoryClient.search`: the scope in `filters` (or at the top level), mem0 metadata filters,
        `top_k`, `threshold`, `categories`."""
        return _search(service, caller, body)

    def list_all(
        request: Request,
        service: ServiceDep,
        caller: ReadCaller,
        body: m.PlatformListRequest,
        page: PlatformPageNumber = None,
        page_size: PlatformPageSize = None,
    ) -> m.PlatformPage:
        """`MemoryClient.get_all`: the scope's memories, newest first, narrowed by filters,
        categories and dates; paginated when `page` or `page_size` is given."""
        return _page(request, _listed(service, caller, body), page, page_size)

    for version, path in (("v1", "/v1/memories/"), ("v3", "/v3/memories/add/")):
        router.add_api_route(
            path, add, methods=["POST"], tags=["mem0 client"], responses=WRITE_BODY, name=f"add_{version}"
        )
    for version in ("v1", "v2", "v3"):
        router.add_api_route(
            f"/{version}/memories/search/",
            search,
            methods=["POST"],
            tags=["mem0 client"],
            responses=READ_BODY,
            name=f"search_{version}",
        )
    for version in ("v2", "v3"):
        router.add_api_route(
            f"/{version}/memories/",
            list_all,
            methods=["POST"],
            tags=["mem0 client"],
            responses=READ_BODY,
            name=f"get_all_{version}",
        )

    @router.get("/v1/memories/", tags=["mem0 client"], responses=READ)
    def list_v1(
        request: Request,
        service: ServiceDep,
        caller: ReadCaller,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
        app_id: AppFilter = None,
        page: PlatformPageNumber = None,
        page_size: PlatformPageSize = None,
    ) -> m.PlatformPage:
        """Older clients' `get_all`: the scope in the query (at least one id)."""
        scope = MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id)
        caller.within(scope)
        return _page(request, service.list_memories(scope, app=app_id), page, page_size)

    @router.delete("/v1/memories/", tags=["mem0 client"], responses=WRITE_ID)
    def delete_all(
        service: ServiceDep,
        caller: WriteCaller,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
        app_id: AppFilter = None,
    ) -> m.MessageResponse:
        """`MemoryClient.delete_all`: every memory of the scope (at least one id), or of its app."""
        scope = MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id)
        caller.within(scope)
        service.delete_all(scope, app=app_id)
        return m.MessageResponse(message="Memories deleted successfully!")

    @router.get(f"/v1/memories/{MEMORY_ID}/", tags=["mem0 client"], responses=READ_ID)
    def get(service: ServiceDep, caller: ReadCaller, memory_id: UUID) -> m.Mem0Memory:
        """`MemoryClient.get`: any memory the key reaches."""
        return m.mem0_view(service.get(caller.within(None), str(memory_id)))

    @router.put(f"/v1/memories/{MEMORY_ID}/", tags=["mem0 client"], responses=WRITE_IDS)
    def update(
        service: ServiceDep, caller: WriteCaller, memory_id: UUID, body: m.Mem0UpdateRequest
    ) -> m.Mem0UpdateResponse:
        """`MemoryClient.update`: text, metadata, expiration date (null clears it)."""
        return _update(service, caller, memory_id, body)

    @router.delete(f"/v1/memories/{MEMORY_ID}/", tags=["mem0 client"], responses=WRITE_ID)
    def delete(
        service: ServiceDep,
        caller: WriteCaller,
        memory_id: UUID,
        delete_linked: Annotated[
            bool | None, Query(description="read, not used: no memory links here")
        ] = None,
    ) -> m.MessageResponse:
        """`MemoryClient.delete`: any memory the key reaches."""
        service.delete(caller.within(None), [str(memory_id)])
        return m.MessageResponse(message="Memory deleted successfully!")

    @router.get(f"/v1/memories/{MEMORY_ID}/history/", tags=["mem0 client"], responses=READ_ID)
    def history(service: ServiceDep, caller: ReadCaller, memory_id: UUID) -> list[m.HistoryEntry]:
        """`MemoryClient.history`: the memory's ADD and its last ten text changes."""
        return _history(service, caller, memory_id)


def add_routes(app: FastAPI) -> None:
    """mem0's routes, on the app itself (its 405 answers name every method of a path)."""
    mem0_server_routes(app)
    platform_routes(app)
