"""The FastAPI application: OpenMemory's REST API, mem0's REST API, MCP, health and metrics."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from memory_operator.server import models as m
from memory_operator.server.auth import Access, ApiKeys, access_of
from memory_operator.server.mcp_server import McpEndpoint, build_mcp, session_manager
from memory_operator.server.metrics import MetricsMiddleware, ServerMetrics
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
UserId = Annotated[str, Query(min_length=1, max_length=253, pattern=r"^\S+$")]
EntityId = Annotated[str | None, Query(min_length=1, max_length=253, pattern=r"^\S+$")]


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuses request bodies over the limit with 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body larger than {self.max_bytes} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def create_app(
    slot: ServiceSlot,
    keys: ApiKeys,
    metrics: ServerMetrics,
    max_body_bytes: int,
    host: str = "0.0.0.0",
    build_in_background: bool = True,
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
        version="v1",
        lifespan=lifespan,
    )

    def require(level: Access) -> Callable[..., None]:
        def check(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
            access = access_of(authorization, keys)
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
        Route(MCP_PATH, endpoint=McpEndpoint(mcp_manager, keys), methods=["GET", "POST", "DELETE"])
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _error_handlers(app: FastAPI) -> None:
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
        detail = [{"loc": ["body"], "msg": str(error), "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)


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

    @app.get("/metrics", tags=["health"], dependencies=read)
    def prometheus_metrics() -> Response:
        """Prometheus metrics (any API key, the read-only one included)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _ids(memory_ids: list[UUID]) -> list[str]:
    return [str(i) for i in memory_ids]


def _openmemory_routes(app: FastAPI, read: list[Any], write: list[Any]) -> None:
    prefix = "/api/v1/memories"

    @app.get(f"{prefix}/", tags=["memories"], dependencies=read)
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

    @app.post(f"{prefix}/", tags=["memories"], dependencies=write)
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

    @app.post(f"{prefix}/filter", tags=["memories"], dependencies=read)
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

    @app.get(f"{prefix}/categories", tags=["memories"], dependencies=read)
    def list_categories(service: ServiceDep, user_id: UserId) -> m.CategoriesResponse:
        """Configured categories and those the user's memories use, with counts."""
        found = service.categories(MemoryScope(user_id=user_id))
        items = [m.CategoryResponse(name=n, description=d, count=c) for n, d, c in found]
        return m.CategoriesResponse(categories=items, total=len(items))

    @app.post(f"{prefix}/actions/archive", tags=["memories"], dependencies=write)
    def archive_memories(
        service: ServiceDep, body: m.ArchiveMemoriesRequest, user_id: UserId | None = None
    ) -> m.MessageResponse:
        """Archive memories: hidden from listings and search, kept in the store."""
        owner = body.user_id or user_id
        if owner is None:
            raise InvalidRequest("user_id is required (in the body or the query)")
        count = service.set_state(MemoryScope(user_id=owner), _ids(body.memory_ids), MemoryState.archived)
        return m.MessageResponse(message=f"Successfully archived {count} memories")

    @app.post(f"{prefix}/actions/pause", tags=["memories"], dependencies=write)
    def pause_memories(service: ServiceDep, body: m.PauseMemoriesRequest) -> m.MessageResponse:
        """Pause (or set another state on) memories by ids, app, categories, or all of the user's."""
        scope = MemoryScope(user_id=body.user_id)
        if body.memory_ids:
            count = service.set_state(scope, _ids(body.memory_ids), body.state)
        elif body.global_pause or (body.all_for_app and body.app_id) or body.category_ids:
            app_name = body.app_id if body.all_for_app else None
            count = service.set_state_where(scope, body.state, app=app_name, categories=body.category_ids)
        else:
            raise InvalidRequest("give memory_ids, category_ids, app_id with all_for_app, or global_pause")
        return m.MessageResponse(message=f"Successfully set {count} memories to {body.state.value}")

    @app.delete(f"{prefix}/", tags=["memories"], dependencies=write)
    def delete_memories(service: ServiceDep, body: m.DeleteMemoriesRequest) -> m.MessageResponse:
        """Delete memories of the user, all or none."""
        count = service.delete(MemoryScope(user_id=body.user_id), _ids(body.memory_ids))
        return m.MessageResponse(message=f"Successfully deleted {count} memories")

    @app.get(f"{prefix}/{{memory_id}}", tags=["memories"], dependencies=read)
    def get_memory(service: ServiceDep, memory_id: UUID, user_id: UserId) -> m.MemoryResponse:
        """One memory of the user."""
        return m.openmemory_view(service.get(MemoryScope(user_id=user_id), str(memory_id)))

    @app.put(f"{prefix}/{{memory_id}}", tags=["memories"], dependencies=write)
    def update_memory(service: ServiceDep, memory_id: UUID, body: m.UpdateMemoryRequest) -> m.MemoryResponse:
        """Change a memory's text (re-embedded) and merge metadata."""
        scope = MemoryScope(user_id=body.user_id)
        updated = service.update(scope, str(memory_id), text=body.memory_content, metadata=body.metadata)
        return m.openmemory_view(updated)

    @app.get("/api/v1/stats", tags=["stats"], dependencies=read)
    def stats(service: ServiceDep, user_id: UserId) -> m.StatsResponse:
        """The user's number of memories and apps."""
        total, apps = service.stats(MemoryScope(user_id=user_id))
        return m.StatsResponse(
            total_memories=total,
            total_apps=len(apps),
            apps=[m.AppStats(name=name, total_memories=count) for name, count in apps.items()],
        )


def _mem0_routes(app: FastAPI, read: list[Any], write: list[Any]) -> None:

    @app.post("/memories", tags=["mem0"], dependencies=write)
    def mem0_add(service: ServiceDep, body: m.Mem0CreateRequest) -> m.Mem0Results:
        """mem0's add: a text or a list of messages, scoped by user, agent and/or run."""
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

    @app.get("/memories", tags=["mem0"], dependencies=read)
    def mem0_list(
        service: ServiceDep, user_id: EntityId = None, agent_id: EntityId = None, run_id: EntityId = None
    ) -> m.Mem0Results:
        """Every active or paused memory in the scope."""
        found = service.list_memories(MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id))
        return m.Mem0Results(results=[m.mem0_view(x) for x in found])

    @app.post("/search", tags=["mem0"], dependencies=read)
    def mem0_search(service: ServiceDep, body: m.Mem0SearchRequest) -> m.Mem0Results:
        """Semantic search over active memories in the scope, with mem0 metadata filters."""
        scope = MemoryScope(user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id)
        found = service.search(scope, body.query, limit=body.top_k, filters=body.filters)
        return m.Mem0Results(results=[m.mem0_view(x) for x in found])

    @app.get("/memories/{memory_id}", tags=["mem0"], dependencies=read)
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

    @app.delete("/memories/{memory_id}", tags=["mem0"], dependencies=write)
    def mem0_delete(
        service: ServiceDep,
        memory_id: UUID,
        user_id: EntityId = None,
        agent_id: EntityId = None,
        run_id: EntityId = None,
    ) -> m.MessageResponse:
        """Delete one memory; the scope must own it."""
        service.delete(MemoryScope(user_id=user_id, agent_id=agent_id, run_id=run_id), [str(memory_id)])
        return m.MessageResponse(message="Memory deleted successfully!")
