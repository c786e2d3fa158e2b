"""OpenMemory's MCP tools over streamable HTTP at `/mcp/{client_name}/http/{user_id}`.

The session manager runs stateless: every request carries its own user (from the path) and key, so
any replica can answer any request and no sticky sessions are needed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from memory_operator.server.auth import Access, ApiKeys, access_of
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
    async def add_memories(text: str, ctx: Context) -> str:
        scope, client_name, access = _caller(ctx)
        writable(access)
        added = await _run(lambda: service().add(scope, text, app=client_name))
        return json.dumps({"results": [{**_summary(m), "event": "ADD"} for m in added]})

    @mcp.tool(description="Search through stored memories. Call it for every user query.")
    async def search_memory(query: str, ctx: Context) -> str:
        scope, _, _ = _caller(ctx)
        found = await _run(lambda: service().search(scope, query, limit=10))
        return json.dumps({"results": [_summary(m) for m in found]})

    @mcp.tool(description="List all memories of the user.")
    async def list_memories(ctx: Context) -> str:
        scope, _, _ = _caller(ctx)
        listed = await _run(lambda: service().list_memories(scope))
        return json.dumps([_summary(m) for m in listed])

    @mcp.tool(description="Delete specific memories by their ids.")
    async def delete_memories(memory_ids: list[str], ctx: Context) -> str:
        scope, _, access = _caller(ctx)
        writable(access)
        count = await _run(lambda: service().delete(scope, memory_ids))
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


class McpEndpoint:
    """ASGI endpoint of the MCP route: checks the API key, then hands over to the session manager."""

    def __init__(self, manager: StreamableHTTPSessionManager, keys: ApiKeys) -> None:
        self.manager = manager
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        access = access_of(headers.get("authorization"), self.keys)
        if access is None:
            response = JSONResponse(
                {"detail": "Not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        scope[ACCESS_KEY] = access
        await self.manager.handle_request(scope, receive, send)
