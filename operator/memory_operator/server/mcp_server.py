"""OpenMemory's MCP tools over streamable HTTP at `/mcp/{client_name}/http/{user_id}`.

The session manager runs stateless: every request carries its own user (from the path) and key, so
any replica can answer any request and no sticky sessions are needed. The path's user id and client
name follow the scope id grammar (a 422 names the one at fault), tool arguments the REST limits, and
an event stream (GET) is closed once nothing has been sent on it for a while.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from memory_operator.server.auth import Access, ApiKeys, access_of, single_authorization
from memory_operator.server.limits import MAX_MEMORY_IDS, Text
from memory_operator.server.scope_id import InvalidScopeId, check_scope_id
from memory_operator.server.store import (
    BackendUnavailable,
    InvalidRequest,
    MemoryNotFound,
    MemoryService,
    StoredMemory,
)
from memory_operator.server.store import Scope as MemoryScope

T = TypeVar("T")
ACCESS_KEY = "memory_operator.access"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The path's parts that name a scope (user_id) or an app (client_name): both follow one grammar.
PATH_IDS = ("client_name", "user_id")
# An event stream on which nothing but keep-alive comments has been sent for this long is closed.
STREAM_IDLE_SECONDS = 60.0
MemoryIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_MEMORY_IDS)]


class ReadOnlyKey(ToolError):
    """A write tool called with the read-only key."""


async def _run(action: Callable[[], T]) -> T:
    """Run a blocking service call in a thread; expected failures reach the model as tool errors."""
    try:
        return await anyio.to_thread.run_sync(action)
    except (MemoryNotFound, InvalidRequest, BackendUnavailable) as error:
        raise ToolError(
            str(error) if not isinstance(error, BackendUnavailable) else "memory store unavailable"
        ) from error


def _caller(ctx: Context) -> tuple[MemoryScope, str, Access]:
    """The user and client of the request's path, and what its key allows."""
    request = ctx.request_context.request
    if request is None:
        raise RuntimeError("the memory tools are served over HTTP only")
    params = request.path_params
    return MemoryScope(user_id=params["user_id"]), params["client_name"], request.scope[ACCESS_KEY]


def _summary(memory: StoredMemory) -> dict[str, Any]:
    return {
        "id": memory.id,
        "memory": memory.text,
        "categories": memory.categories,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
        "score": memory.score,
    }


def build_mcp(service: Callable[[], MemoryService]) -> MCPServer:
    """The MCP server with OpenMemory's five tools; `service` gives the ready memory service."""
    mcp = MCPServer(name="memory-operator", instructions="Long-term memory: add, search, list and delete.")

    def writable(access: Access) -> None:
        if access < Access.write:
            raise ReadOnlyKey("this API key is read-only")

    @mcp.tool(description="Add a new memory. Call it whenever the user shares something worth remembering.")
    async def add_memories(text: Text, ctx: Context) -> str:
        scope, client_name, access = _caller(ctx)
        writable(access)
        added = await _run(lambda: service().add(scope, text, app=client_name))
        return json.dumps({"results": [{**_summary(m), "event": "ADD"} for m in added]})

    @mcp.tool(description="Search through stored memories. Call it for every user query.")
    async def search_memory(query: Text, ctx: Context) -> str:
        scope, _, _ = _caller(ctx)
        found = await _run(lambda: service().search(scope, query, limit=10))
        return json.dumps({"results": [_summary(m) for m in found]})

    @mcp.tool(description="List all memories of the user.")
    async def list_memories(ctx: Context) -> str:
        scope, _, _ = _caller(ctx)
        listed = await _run(lambda: service().list_memories(scope))
        return json.dumps([_summary(m) for m in listed])

    @mcp.tool(description="Delete specific memories by their ids.")
    async def delete_memories(memory_ids: MemoryIds, ctx: Context) -> str:
        scope, _, access = _caller(ctx)
        writable(access)
        count = await _run(lambda: service().delete(scope, [str(i) for i in memory_ids]))
        return f"Successfully deleted {count} memories"

    @mcp.tool(description="Delete all memories of the user.")
    async def delete_all_memories(ctx: Context) -> str:
        scope, _, access = _caller(ctx)
        writable(access)
        count = await _run(lambda: service().delete_all(scope))
        return f"Successfully deleted all memories ({count})"

    return mcp


def session_manager(mcp: MCPServer, host: str, max_body_bytes: int) -> StreamableHTTPSessionManager:
    """A stateless, JSON-answering session manager; DNS-rebinding protection on loopback hosts."""
    security = (
        TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
        )
        if host in LOOPBACK_HOSTS
        else None
    )
    # The SDK builds its session manager with the Starlette app it returns; the server mounts only
    # the session manager, under its own route with the user in the path.
    mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=security,
        max_request_body_size=max_body_bytes,
        host=host,
    )
    return mcp.session_manager


def invalid_path_ids(path_params: dict[str, Any]) -> list[dict[str, Any]]:
    """Validation errors (FastAPI's shape) of the path's user id and client name; empty if valid."""
    errors = []
    for name in PATH_IDS:
        try:
            check_scope_id(name, path_params.get(name))
        except InvalidScopeId as error:
            errors.append({"loc": ["path", name], "msg": str(error), "type": "value_error"})
    return errors


def carries_data(body: bytes) -> bool:
    """Whether an event-stream chunk holds more than comment lines (keep-alive pings start with `:`)."""
    return any(line and not line.startswith(b":") for line in body.splitlines())


async def close_when_idle(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    scope: Scope,
    receive: Receive,
    send: Send,
    idle_seconds: float,
) -> None:
    """Run a streaming response, ending it once it has sent no data for `idle_seconds`."""
    last_data = anyio.current_time()
    started = finished = False

    async def watched_send(message: Message) -> None:
        nonlocal last_data, started, finished
        if message["type"] == "http.response.start":
            started = True
        elif message["type"] == "http.response.body":
            if carries_data(message.get("body", b"")):
                last_data = anyio.current_time()
            finished = not message.get("more_body", False)
        await send(message)

    async with anyio.create_task_group() as group:

        async def watchdog() -> None:
            while (left := last_data + idle_seconds - anyio.current_time()) > 0:
                await anyio.sleep(left)
            group.cancel_scope.cancel()

        group.start_soon(watchdog)
        await app(scope, receive, watched_send)
        group.cancel_scope.cancel()
    if started and not finished:
        # The client may be gone already; ending the body is all that is left to do.
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class McpEndpoint:
    """ASGI endpoint of the MCP route: checks the key and the path, then hands over to the SDK."""

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        keys: ApiKeys,
        stream_idle_seconds: float = STREAM_IDLE_SECONDS,
    ) -> None:
        self.manager = manager
        self.keys = keys
        self.stream_idle_seconds = stream_idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        access = access_of(single_authorization(scope["headers"]), self.keys)
        if access is None:
            response = JSONResponse(
                {"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        errors = invalid_path_ids(scope.get("path_params", {}))
        if errors:
            await JSONResponse({"detail": errors}, status_code=422)(scope, receive, send)
            return
        scope[ACCESS_KEY] = access
        if scope["method"] == "GET":
            await close_when_idle(self.manager.handle_request, scope, receive, send, self.stream_idle_seconds)
        else:
            await self.manager.handle_request(scope, receive, send)
