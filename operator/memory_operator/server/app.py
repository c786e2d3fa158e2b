"""The FastAPI application: OpenMemory's REST API, mem0's REST API, MCP, health and metrics."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from starlette.routing import Match, Route

from memory_operator.server import limits
from memory_operator.server import models as m
from memory_operator.server.auth import Access, ApiKeys, access_of, single_authorization
from memory_operator.server.mcp_server import STREAM_IDLE_SECONDS, McpEndpoint, build_mcp, session_manager
from memory_operator.server.metrics import MetricsMiddleware, ServerMetrics
from memory_operator.server.scope_id import SCOPE_ID_MAX_LENGTH, SCOPE_ID_PATTERN, SCOPE_ID_RULE
from memory_operator.server.store import (
    LISTED_STATES,
    BackendUnavailable,
    InvalidRequest,
    MemoryNotFound,
    MemoryService,
    MemoryState,
)
from memory_operator.server.store import Scope as MemoryScope

log = logging.getLogger("memory_operator.server")

MCP_PATH = "/mcp/{client_name}/http/{user_id}"
RETRY_AFTER_SECONDS = "5"


@dataclass
class ServiceSlot:
    """The memory service once it is built: the port opens at once, the model and Qdrant follow."""

    build: Callable[[], MemoryService]
    retry_seconds: float = 2.0
    service: MemoryService | None = None
    last_error: str | None = None
    stopping: threading.Event = field(default_factory=threading.Event)

    def get(self) -> MemoryService:
        if self.service is None:
            raise BackendUnavailable("starting")
        return self.service

    def build_until_ready(self) -> None:
        """Build the service, retrying while Qdrant is unreachable (it may start after the server)."""
        while not self.stopping.is_set():
            try:
                self.service = self.build()
                log.info("memory service ready")
                return
            except Exception as error:  # any failure: log its kind, retry
                self.last_error = type(error).__name__
                log.warning("memory service not ready, retrying: error=%s", self.last_error)
                self.stopping.wait(self.retry_seconds)

    def close(self) -> None:
        self.stopping.set()
        if self.service is not None:
            self.service.client.close()


def current_service(request: Request) -> MemoryService:
    slot: ServiceSlot = request.app.state.slot
    return slot.get()


ServiceDep = Annotated[MemoryService, Depends(current_service)]
SCOPE_ID_QUERY: dict[str, Any] = {
    "min_length": 1,
    "max_length": SCOPE_ID_MAX_LENGTH,
    "pattern": SCOPE_ID_PATTERN,
    "description": f"A scope id: {SCOPE_ID_RULE}.",
}
UserId = Annotated[str, Query(**SCOPE_ID_QUERY)]
EntityId = Annotated[str | None, Query(**SCOPE_ID_QUERY)]
# Starlette's uuid convertor: a path that is not a UUID (`/api/v1/memories/filter`) matches no
# memory route, so a wrong method on it gets 405, not a 422 about the id.
MEMORY_ID = "{memory_id:uuid}"
# Bearer keys, declared for the OpenAPI document; the check itself reads the raw headers.
bearer = HTTPBearer(auto_error=False, description="A read-write or read-only API key.")


def _error(description: str, model: type[BaseModel] = m.ErrorResponse) -> dict[str, Any]:
    return {"model": model, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No valid API key: missing, unknown, or more than one Authorization header."),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    403: _error("The API key is read-only."),
}
STORE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: _error("The memory store is starting or Qdrant is unreachable; retry after `Retry-After`."),
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not a JSON document the server can parse."),
    413: {
        **_error("The body is larger than the server's limit (1 MiB unless configured otherwise)."),
        # Starlette answers in plain text when the declared Content-Length is already too large,
        # in JSON when a streamed body goes over the limit.
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _error("Some memory is not the caller's (or does not exist).", m.NotFoundResponse),
}
# What each kind of route may answer besides 200 and 422 (which FastAPI declares itself).
READ = {**AUTH_ERRORS, **STORE_ERRORS}
READ_BODY = {**READ, **BODY_ERRORS}
READ_ID = {**READ, **NOT_FOUND}
WRITE_BODY = {**WRITE_ERRORS, **STORE_ERRORS, **BODY_ERRORS}
WRITE_ID = {**WRITE_ERRORS, **STORE_ERRORS, **NOT_FOUND}
WRITE_IDS = {**WRITE_BODY, **NOT_FOUND}

DESCRIPTION = f"""
OpenMemory's REST API (`/api/v1`), mem0's REST API (`/memories`, `/search`) and MCP over
streamable HTTP (`/mcp/{{client_name}}/http/{{user_id}}`, not described here), with API keys.

**Scope ids** (`user_id`, `agent_id`, `run_id`, and the MCP path's user id and client name):
{SCOPE_ID_RULE}. Anything else is refused with 422 naming the field.

**Limits**: request body {{max_body_bytes}} bytes (413 beyond, streamed or not); text, query and
message content {limits.TEXT_MAX_CHARS} characters; {limits.MAX_MESSAGES} messages per add;
{limits.MAX_MEMORY_IDS} memory ids per request; {limits.MAX_NAMES} apps or categories per request;
metadata {limits.METADATA_MAX_DEPTH} levels deep with {limits.METADATA_MAX_ITEMS} entries per object or array;
search filters {limits.FILTER_MAX_DEPTH} levels of AND/OR/NOT with {limits.FILTER_MAX_CONDITIONS}
conditions in all. Text must be valid Unicode. Unknown body fields and query parameters are
refused. Validation errors name the field and never repeat the value.
"""


def declared_query_parameters(dependant: Any) -> set[str]:
    """Names of the query parameters a route (and its dependencies) declares."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    return names


def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the route does not declare, as bodies refuse unknown fields: a
    misspelt parameter (`userid`) is an error, not silently ignored."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    known = declared_query_parameters(dependant)
    unknown = [name for name in request.query_params if name not in known]
    if unknown:
        error = {"msg": "unknown query parameter", "type": "extra_forbidden"}
        raise RequestValidationError([{**error, "loc": ("query", name)} for name in unknown])


def shown(value: object, limit: int = 200) -> str:
    """A value as an error message may show it: valid Unicode and short."""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loc_part(part: object) -> str | int:
    return part if isinstance(part, int) else shown(part, 64)


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors without the rejected input: where, what and which kind, each kept short."""
    return [
        {
            "loc": [_loc_part(part) for part in error.get("loc", ())],
            "msg": shown(error.get("msg", "")),
            "type": shown(error.get("type", "value_error"), 64),
        }
        for error in list(errors)[:MAX_ERRORS_SHOWN]
    ]


MAX_ERRORS_SHOWN = 20


def create_app(
    slot: ServiceSlot,
    keys: ApiKeys,
    metrics: ServerMetrics,
    max_body_bytes: int,
    host: str = "0.0.0.0",
    build_in_background: bool = True,
    stream_idle_seconds: float = STREAM_IDLE_SECONDS,
) -> FastAPI:
    """The whole server; `slot` builds the memory service in a thread when the app starts."""
    mcp_manager = session_manager(build_mcp(slot.get), host, max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        builder = None
        if build_in_background and slot.service is None:
            builder = threading.Thread(target=slot.build_until_ready, name="memory-service", daemon=True)
            builder.start()
        async with mcp_manager.run():
            yield
        slot.close()
        if builder is not None:
            builder.join(timeout=30)

    app = FastAPI(
        title="memory-operator memory server",
        summary="OpenMemory-compatible memory API on mem0 and Qdrant, with API keys.",
        description=DESCRIPTION.replace("{max_body_bytes}", str(max_body_bytes)),
        version="v1",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        dependencies=[Depends(known_query_parameters)],
    )

    def require(level: Access) -> Callable[..., None]:
        def check(request: Request, _: Annotated[Any, Security(bearer)] = None) -> None:
            access = access_of(single_authorization(request.scope["headers"]), keys)
            if access is None:
                raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
            if access < level:
                raise HTTPException(403, "This API key is read-only")

        return check

    read = [Depends(require(Access.read))]
    write = [Depends(require(Access.write))]
    app.state.slot = slot

    _error_handlers(app)
    _health_routes(app, slot, metrics, read)
    _openmemory_routes(app, read, write)
    _mem0_routes(app, read, write)
    app.router.routes.append(
        Route(
            MCP_PATH,
            endpoint=McpEndpoint(mcp_manager, keys, stream_idle_seconds),
            methods=["GET", "POST", "DELETE"],
        )
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """Every method some route serves at the request's path (Starlette's 405 names only one route's)."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(405)
    async def method_not_allowed(request: Request, _: Exception) -> JSONResponse:
        allow = ", ".join(allowed_methods(app, request.scope))
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": allow})

    @app.exception_handler(RequestValidationError)
    async def invalid_input(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_errors(error.errors())}, status_code=422)

    @app.exception_handler(BackendUnavailable)
    async def unavailable(_: Request, error: BackendUnavailable) -> JSONResponse:
        log.warning("memory store unavailable: cause=%s", error)
        return JSONResponse(
            {"detail": "memory store unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )

    @app.exception_handler(MemoryNotFound)
    async def not_found(_: Request, error: MemoryNotFound) -> JSONResponse:
        return JSONResponse({"detail": "memory not found", "memory_ids": error.ids}, status_code=404)

    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, error: InvalidRequest) -> JSONResponse:
        detail = [{"loc": list(error.loc) or ["body"], "msg": str(error), "type": "value_error"}]
        return JSONResponse({"detail": validation_errors(detail)}, status_code=422)


def _health_routes(app: FastAPI, slot: ServiceSlot, metrics: ServerMetrics, read: list[Any]) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up (no dependency checked)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Qdrant or the collection missing"}})
    def readyz() -> JSONResponse:
        """Qdrant is reachable and the collection exists."""
        try:
            ready = slot.get().ready()
        except BackendUnavailable:
            ready = False
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=read,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}, **AUTH_ERRORS},
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics (any API key, the read-only one included)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _ids(memory_ids: list[UUID]) -> list[str]:
    return [str(i) for i in memory_ids]


def _openmemory_routes(app: FastAPI, read: list[Any], write: list[Any]) -> None:
    prefix = "/api/v1/memories"

    @app.get(f"{prefix}/", tags=["memories"], dependencies=read, responses=READ)
    def list_memories(
        service: ServiceDep,
        user_id: UserId,
        page: Annotated[int, Query(ge=1)] = 1,
        size: Annotated[int, Query(ge=1, le=100)] = 50,
        app_id: Annotated[str | None, Query(max_length=253, description="app name")] = None,
        categories: Annotated[str | None, Query(description="comma-separated category names")] = None,
        state: MemoryState | None = None,
        search_query: Annotated[str | None, Query(max_length=1000)] = None,
        from_date: Annotated[int | None, Query(ge=0)] = None,
        to_date: Annotated[int | None, Query(ge=0)] = None,
        sort_column: m.SortColumn | None = None,
        sort_direction: m.SortDirection | None = None,
    ) -> m.MemoryPage:
        """The user's memories (active and paused unless `state` is given), paginated."""
        names = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
        found = service.list_memories(
            MemoryScope(user_id=user_id),
            states=[state] if state else LISTED_STATES,
            app=app_id,
            categories=names,
            text=search_query,
        )
        return m.page_of(m.narrowed(found, from_date, to_date, sort_column, sort_direction), page, size)

    @app.post(f"{prefix}/", tags=["memories"], dependencies=write, responses=WRITE_BODY)
    def create_memory(service: ServiceDep, body: m.CreateMemoryRequest) -> m.MemoryResponse | m.Mem0Results:
        """Store a memory; returns it (or, when an LLM extracted several, all of them)."""
        added = service.add(
            MemoryScope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id),
            body.text,
            metadata=body.metadata,
            categories=body.categories,
            app=body.app,
            infer=body.infer,
            expiration_date=body.expiration_date,
        )
        if len(added) == 1:
            return m.openmemory_view(added[0])
        return m.Mem0Results(results=[m.mem0_view(a) for a in added])

    @app.post(f"{prefix}/filter", tags=["memories"], dependencies=read, responses=READ_BODY)
    def filter_memories(service: ServiceDep, body: m.FilterMemoriesRequest) -> m.MemoryPage:
        """OpenMemory's filtered listing: apps, categories, text, dates, sorting, archived or not."""
        states = [*LISTED_STATES, MemoryState.archived] if body.show_archived else LISTED_STATES
        found = service.list_memories(
            MemoryScope(user_id=body.user_id),
            states=states,
            categories=body.category_ids,
            text=body.search_query,
        )
        if body.app_ids:
            found = [x for x in found if x.app in body.app_ids]
        ordered = m.narrowed(found, body.from_date, body.to_date, body.sort_column, body.sort_direction)
        return m.page_of(ordered, body.page, body.size)

    @app.get(f"{prefix}/categories", tags=["memories"], dependencies=read, responses=READ)
    def list_categories(service: ServiceDep, user_id: UserId) -> m.CategoriesResponse:
        """Configured categories and those the user's memories use, with counts."""
        found = service.categories(MemoryScope(user_id=user_id))
        items = [m.CategoryResponse(name=n, description=d, count=c) for n, d, c in found]
        return m.CategoriesResponse(categories=items, total=len(items))

    @app.post(f"{prefix}/actions/archive", tags=["memories"], dependencies=write, responses=WRITE_IDS)
    def archive_memories(
        service: ServiceDep, body: m.ArchiveMemoriesRequest, user_id: UserId | None = None
    ) -> m.MessageResponse:
        """Archive memories: hidden from listings and search, kept in the store.

        The user is given as `user_id` in the body or in the query (as OpenMemory takes it); one of
        the two is required.
        """
        owner = body.user_id or user_id
        if owner is None:
            raise InvalidRequest("user_id is required (in the body or the query)")
        count = service.set_state(MemoryScope(user_id=owner), _ids(body.memory_ids), MemoryState.archived)
        return m.MessageResponse(message=f"Successfully archived {count} memories")

    @app.post(f"{prefix}/actions/pause", tags=["memories"], dependencies=write, responses=WRITE_IDS)
    def pause_memories(service: ServiceDep, body: m.PauseMemoriesRequest) -> m.MessageResponse:
        """Pause (or set another state on) memories by ids, app, categories, or all of the user's.

        One of `memory_ids`, `category_ids`, `app_id` with `all_for_app`, or `global_pause` is required.
        """
        scope = MemoryScope(user_id=body.user_id)
        if body.memory_ids:
            count = service.set_state(scope, _ids(body.memory_ids), body.state)
        elif body.global_pause or (body.all_for_app and body.app_id) or body.category_ids:
            app_name = body.app_id if body.all_for_app else None
            count = service.set_state_where(scope, body.state, app=app_name, categories=body.category_ids)
        else:
            raise InvalidRequest("give memory_ids, category_ids, app_id with all_for_app, or global_pause")
        return m.MessageResponse(message=f"Successfully set {count} memories to {body.state.value}")

    @app.delete(f"{prefix}/", tags=["memories"], dependencies=write, responses=WRITE_IDS)
    def delete_memories(service: ServiceDep, body: m.DeleteMemoriesRequest) -> m.MessageResponse:
        """Delete memories of the user, all or none."""
        count = service.delete(MemoryScope(user_id=body.user_id), _ids(body.memory_ids))
        return m.MessageResponse(message=f"Successfully deleted {count} memories")

    @app.get(f"{prefix}/{MEMORY_ID}", tags=["memories"], dependencies=read, responses=READ_ID)
    def get_memory(service: ServiceDep, memory_id: UUID, user_id: UserId) -> m.MemoryResponse:
        """One memory of the user."""
        return m.openmemory_view(service.get(MemoryScope(user_id=user_id), str(memory_id)))

    @app.put(f"{prefix}/{MEMORY_ID}", tags=["memories"], dependencies=write, responses=WRITE_IDS)
    def update_memory(service: ServiceDep, memory_id: UUID, body: m.UpdateMemoryRequest) -> m.MemoryResponse:
        """Change a memory's text (re-embedded) and merge metadata."""
        scope = MemoryScope(user_id=body.user_id)
        updated = service.update(scope, str(memory_id), text=body.memory_content, metadata=body.metadata)
        return m.openmemory_view(updated)

    @app.get("/api/v1/stats", tags=["stats"], dependencies=read, responses=READ)
    def stats(service: ServiceDep, user_id: UserId) -> m.StatsResponse:
        """The user's number of memories and apps."""
        total, apps = service.stats(MemoryScope(user_id=user_id))
        return m.StatsResponse(
            total_memories=total,
            total_apps=len(apps),
            apps=[m.AppStats(name=name, total_memories=count) for name, count in apps.items()],
        )


def _mem0_routes(app: FastAPI, read: list[Any], write: list[Any]) -> None:

    @app.post("/memories", tags=["mem0"], dependencies=write, responses=WRITE_BODY)
    def mem0_add(service: ServiceDep, body: m.Mem0CreateRequest) -> m.Mem0Results:
        """mem0's add: a text or a list of messages, scoped by user, agent and/or run.

        At least one of `user_id`, `agent_id`, `run_id` is required.
        """
        messages = (
            body.messages if isinstance(body.messages, str) else [x.model_dump() for x in body.messages]
        )
        added = service.add(
            MemoryScope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id),
            messages,
            metadata=body.metadata,
            categories=body.categories,
            app=body.app,
            infer=body.infer,
            expiration_date=body.expiration_date,
        )
        return m.Mem0Results(results=[m.mem0_view(a) for a in added])

    @app.get("/memories", tags=["mem0"], dependencies=read, responses=READ)
    def mem0_list(
        service: ServiceDep, user_id: EntityId = None, agent_id: EntityId = None, run_id: EntityId = None
    ) -> m.Mem0Results:
        """Every active or paused memory in the scope (at least one of user_id, agent_id, run_id)."""
        found = service.list_memories(MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id))
        return m.Mem0Results(results=[m.mem0_view(x) for x in found])

    @app.post("/search", tags=["mem0"], dependencies=read, responses=READ_BODY)
    def mem0_search(service: ServiceDep, body: m.Mem0SearchRequest) -> m.Mem0Results:
        """Semantic search over active memories in the scope, with mem0 metadata filters.

        At least one of `user_id`, `agent_id`, `run_id` is required.
        """
        scope = MemoryScope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id)
        found = service.search(scope, body.query, limit=body.top_k, filters=body.filters)
        return m.Mem0Results(results=[m.mem0_view(x) for x in found])

    @app.get(f"/memories/{MEMORY_ID}", tags=["mem0"], dependencies=read, responses=READ_ID)
    def mem0_get(
        service: ServiceDep,
        memory_id: UUID,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.Mem0Memory:
        """One memory; the scope (at least one of user_id, agent_id, run_id) must own it."""
        scope = MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id)
        return m.mem0_view(service.get(scope, str(memory_id)))

    @app.delete(f"/memories/{MEMORY_ID}", tags=["mem0"], dependencies=write, responses=WRITE_ID)
    def mem0_delete(
        service: ServiceDep,
        memory_id: UUID,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.MessageResponse:
        """Delete one memory; the scope (at least one of user_id, agent_id, run_id) must own it."""
        service.delete(MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id), [str(memory_id)])
        return m.MessageResponse(message="Memory deleted successfully!")
