"""The FastAPI application: OpenMemory's REST API, mem0's REST API and client paths, MCP (streamable
HTTP and SSE), health and metrics, and CORS when origins are allowed."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match, Route

from memory_operator.server import erasure_api, limits, mem0_api, openmemory_api
from memory_operator.server.auth import API_KEY_HEADER, ApiKeys, OutsideReach
from memory_operator.server.deps import (
    AUTH_ERRORS,
    ReadCaller,
    ServiceSlot,
    known_query_parameters,
    validation_errors,
)
from memory_operator.server.mcp_server import (
    HTTP_PATH,
    MAX_SSE_SESSIONS,
    MESSAGES_PATH,
    SSE_MESSAGES_PATH,
    SSE_PATH,
    STREAM_IDLE_SECONDS,
    McpEndpoint,
    SseConnect,
    SseMessages,
    SseSessions,
    build_mcp,
    session_manager,
)
from memory_operator.server.metrics import MetricsMiddleware, ServerMetrics
from memory_operator.server.scope_id import SCOPE_ID_RULE
from memory_operator.server.settings import ServerSettings
from memory_operator.server.store import (
    AppNotFound,
    AppPaused,
    BackendUnavailable,
    InvalidRequest,
    MemoryNotFound,
)

__all__ = ["ServiceSlot", "create_app"]

log = logging.getLogger("memory_operator.server")

MCP_PATH = HTTP_PATH
RETRY_AFTER_SECONDS = "5"
# What a browser page may send and read when CORS is on (keys travel in headers, never cookies).
CORS_HEADERS = [
    "Authorization",
    API_KEY_HEADER,
    "Content-Type",
    "Accept",
    "Mcp-Session-Id",
    "Mcp-Protocol-Version",
]
CORS_EXPOSED = ["Mcp-Session-Id", "Retry-After", "Content-Disposition"]

DESCRIPTION = f"""
OpenMemory's REST API (`/api/v1`), mem0's REST API (`/memories`, `/search`), the paths mem0's
`MemoryClient` calls (`/v1`, `/v2`, `/v3`), and MCP at OpenMemory's paths (streamable HTTP at
`/mcp/{{client_name}}/http/{{user_id}}`, SSE at `/mcp/{{client_name}}/sse/{{user_id}}`; not described
here), with API keys: `Authorization: Bearer <key>`, `Authorization: Token <key>` or `X-API-Key: <key>`.

**Scope ids** (`user_id`, `agent_id`, `run_id`, and the MCP path's user id and client name):
{SCOPE_ID_RULE}. Anything else is refused with 422 naming the field. A request by memory id
without a scope acts on every memory its key reaches.

**Limits**: request body {{max_body_bytes}} bytes (413 beyond, streamed or not); text, query and
message content {limits.TEXT_MAX_CHARS} characters; {limits.MAX_MESSAGES} messages per add;
{limits.MAX_MEMORY_IDS} memory ids per request; {limits.MAX_NAMES} apps or categories per request;
metadata {limits.METADATA_MAX_DEPTH} levels deep with {limits.METADATA_MAX_ITEMS} entries per object or array;
search filters {limits.FILTER_MAX_DEPTH} levels of AND/OR/NOT with {limits.FILTER_MAX_CONDITIONS}
conditions in all. Text must be valid Unicode. Bodies ignore unknown fields and read null as absent,
as upstream's servers do; unknown query parameters are refused. Validation errors name the field
and never repeat the value.
"""


def create_app(
    slot: ServiceSlot,
    keys: ApiKeys,
    metrics: ServerMetrics,
    max_body_bytes: int,
    host: str = "0.0.0.0",
    build_in_background: bool = True,
    stream_idle_seconds: float = STREAM_IDLE_SECONDS,
    cors_origins: Sequence[str] = (),
    settings: ServerSettings | None = None,
    max_sse_sessions: int = MAX_SSE_SESSIONS,
) -> FastAPI:
    """The whole server; `slot` builds the memory service in a thread when the app starts.

    `cors_origins`: browser origins allowed to call the API (none: CORS off, as by default).
    """
    origins = tuple(cors_origins)
    mcp = build_mcp(slot.get, metrics)
    mcp_manager = session_manager(mcp, host, max_body_bytes, origins)
    sse = SseSessions(mcp, keys, host, max_body_bytes, origins, max_sse_sessions)

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
        summary="OpenMemory- and mem0-compatible memory API on mem0 and Qdrant, with API keys.",
        description=DESCRIPTION.replace("{max_body_bytes}", str(max_body_bytes)),
        version="v1",
        lifespan=lifespan,
        max_body_size=max_body_bytes,
        dependencies=[Depends(known_query_parameters)],
        # No redirect between `/x` and `/x/`: `/mcp/c/http/alice%2F` must not be sent on to `alice`
        # (mem0's server redirects none either; every path upstream clients call is served as called).
        redirect_slashes=False,
    )
    app.state.slot = slot
    app.state.keys = keys

    _error_handlers(app)
    _health_routes(app, slot, metrics)
    openmemory_api.add_routes(app, settings, max_body_bytes)
    erasure_api.add_routes(app)
    mem0_api.add_routes(app)
    app.router.routes.extend(
        [
            Route(
                HTTP_PATH,
                endpoint=McpEndpoint(mcp_manager, keys, stream_idle_seconds, max_body_bytes),
                methods=["GET", "POST", "DELETE"],
            ),
            Route(SSE_PATH, endpoint=SseConnect(sse), methods=["GET"]),
            Route(MESSAGES_PATH, endpoint=SseMessages(sse), methods=["POST"]),
            Route(SSE_MESSAGES_PATH, endpoint=SseMessages(sse), methods=["POST"]),
        ]
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if origins:
        # Outermost, so that refusals (401, 413, 503) carry the headers a browser needs to read them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            allow_credentials=False,
            max_age=600,
        )
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

    @app.exception_handler(AppNotFound)
    async def app_not_found(_: Request, __: AppNotFound) -> JSONResponse:
        return JSONResponse({"detail": "App not found"}, status_code=404)

    @app.exception_handler(AppPaused)
    async def app_paused(_: Request, error: AppPaused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(OutsideReach)
    async def outside_reach(_: Request, __: OutsideReach) -> JSONResponse:
        return JSONResponse({"detail": "This API key does not reach this scope"}, status_code=403)

    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, error: InvalidRequest) -> JSONResponse:
        detail = [{"loc": list(error.loc) or ["body"], "msg": str(error), "type": "value_error"}]
        return JSONResponse({"detail": validation_errors(detail)}, status_code=422)


def _health_routes(app: FastAPI, slot: ServiceSlot, metrics: ServerMetrics) -> None:
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
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}, **AUTH_ERRORS},
    )
    def prometheus_metrics(caller: ReadCaller) -> Response:
        """Prometheus metrics (the store's keys, the read-only one included; not a client's key: they
        count every client's requests)."""
        if caller.client is not None:
            raise HTTPException(403, "Metrics need one of the store's own keys")
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
