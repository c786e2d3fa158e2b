"""OpenMemory's MCP tools, over streamable HTTP and over SSE, at OpenMemory's paths.

- Streamable HTTP at `/mcp/{client_name}/http/{user_id}`: the session manager runs stateless, every
  request carries its own user (from the path) and key, so any replica answers any request. An
  event stream (GET) is closed once nothing has been sent on it for a while.
- SSE at `GET /mcp/{client_name}/sse/{user_id}`, messages posted to `/mcp/messages/?session_id=...`
  (or `/mcp/{client_name}/sse/{user_id}/messages/`), the transport OpenMemory's install snippets use.
  A session lives in the process that opened it: one replica, or sticky sessions. Its messages must
  come with the same key that opened it; sessions are counted and capped.

Both check the key and the path's user id and client name (the scope id grammar, a 422 naming the
one at fault) before the SDK sees the request, and hand the tools the caller through the request's
scope. Tool arguments follow the REST limits. The client name is the memories' app.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from uuid import UUID

import anyio
from fastapi import HTTPException
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from memory_operator.server.auth import Access, ApiKeys, Caller, OutsideReach, authenticate
from memory_operator.server.clients import Throttled
from memory_operator.server.deps import admit, throttled
from memory_operator.server.limits import MAX_MEMORY_IDS, Text
from memory_operator.server.metrics import LIMIT_SCOPE_KEY, ServerMetrics
from memory_operator.server.scope_id import InvalidScopeId, check_scope_id
from memory_operator.server.store import (
    AppPaused,
    BackendUnavailable,
    InvalidRequest,
    MemoryNotFound,
    MemoryService,
    StoredMemory,
)
from memory_operator.server.store import Scope as MemoryScope

T = TypeVar("T")
CALLER_KEY = "memory_operator.caller"
USER_KEY = "memory_operator.user_id"
CLIENT_KEY = "memory_operator.client_name"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
HTTP_PATH = "/mcp/{client_name}/http/{user_id}"
SSE_PATH = "/mcp/{client_name}/sse/{user_id}"
MESSAGES_PATH = "/mcp/messages/"
SSE_MESSAGES_PATH = "/mcp/{client_name}/sse/{user_id}/messages/"
# The path's parts that name a scope (user_id) or an app (client_name): both follow one grammar.
PATH_IDS = ("client_name", "user_id")
# An event stream on which nothing but keep-alive comments has been sent for this long is closed.
STREAM_IDLE_SECONDS = 60.0
# Open SSE sessions one process keeps at most; more get 503 until some close.
MAX_SSE_SESSIONS = 256
MemoryIds = Annotated[list[UUID], Field(min_length=1, max_length=MAX_MEMORY_IDS)]
Infer = Annotated[
    bool,
    Field(
        description=(
            "Extract facts with the server's language model (the default, as OpenMemory); false stores "
            "the text verbatim. Without a language model the text is always stored verbatim."
        )
    ),
]
SESSION_ID = re.compile(rb"session_id=([0-9a-f]{32})")
# The tools that write: each call counts against a client's write rate.
WRITE_TOOLS = frozenset({"add_memories", "delete_memories", "delete_all_memories", "erase_user_memories"})


class ReadOnlyKey(ToolError):
    """A write tool called with the read-only key."""


async def _run(action: Callable[[], T]) -> T:
    """Run a blocking service call in a thread; expected failures reach the model as tool errors."""
    try:
        return await anyio.to_thread.run_sync(action)
    except (MemoryNotFound, InvalidRequest, AppPaused) as error:
        raise ToolError(f"Error: {error}") from error
    except BackendUnavailable as error:
        raise ToolError("Error: Memory system is currently unavailable. Please try again later.") from error


def _caller(ctx: Context) -> tuple[MemoryScope, str, Caller]:
    """The user and client the request acts for (its path, or its SSE session's), and its caller."""
    request = ctx.request_context.request
    if request is None:
        raise RuntimeError("the memory tools are served over HTTP only")
    scope = request.scope
    return MemoryScope(user_id=scope[USER_KEY]), scope[CLIENT_KEY], scope[CALLER_KEY]


def _summary(memory: StoredMemory) -> dict[str, Any]:
    return {
        "id": memory.id,
        "memory": memory.text,
        "hash": memory.hash,
        "categories": memory.categories,
        "created_at": memory.created_at,
        "updated_at": memory.updated_at,
        "score": memory.score,
    }


ADD_DESCRIPTION = (
    "Add a new memory. This method is called everytime the user informs anything about themselves, "
    "their preferences, or anything that has any relevant information which can be useful in the "
    "future conversation. This can also be called when the user asks you to remember something. "
    "Set infer to False to store the memory verbatim without LLM fact extraction."
)


ERASE_DESCRIPTION = (
    "Erase everything stored about the user: every memory in every app and state, with the records "
    "derived from them. Call it only when the user asks to be forgotten; it reports how many memories "
    "were deleted."
)


def build_mcp(service: Callable[[], MemoryService], metrics: ServerMetrics | None = None) -> MCPServer:
    """The MCP server with OpenMemory's five tools and `erase_user_memories`; `service` gives the ready
    memory service."""
    mcp = MCPServer(name="memory-operator", instructions="Long-term memory: add, search, list and delete.")

    def writable(caller: Caller) -> None:
        if caller.access < Access.write:
            if caller.client is not None and metrics is not None:
                metrics.client_denials.labels(client=caller.client.name).inc()
            raise ReadOnlyKey("Error: this API key is read-only")

    @mcp.tool(description=ADD_DESCRIPTION)
    async def add_memories(text: Text, ctx: Context, infer: Infer = True) -> str:
        scope, client_name, caller = _caller(ctx)
        writable(caller)
        added = await _run(lambda: service().add(scope, text, app=client_name, infer=infer))
        return json.dumps({"results": [{**_summary(m), "event": m.event or "ADD"} for m in added]})

    @mcp.tool(
        description="Search through stored memories. This method is called EVERYTIME the user asks anything."
    )
    async def search_memory(query: Text, ctx: Context) -> str:
        scope, client_name, _ = _caller(ctx)

        def search() -> list[StoredMemory]:
            found = service().search(scope, query, limit=10)
            service().record_access(found, client_name, "search")
            return found

        found = await _run(search)
        return json.dumps({"results": [_summary(m) for m in found]}, indent=2)

    @mcp.tool(description="List all memories in the user's memory")
    async def list_memories(ctx: Context) -> str:
        scope, client_name, _ = _caller(ctx)

        def listed() -> list[StoredMemory]:
            found = service().list_memories(scope)
            service().record_access(found, client_name, "list")
            return found

        # mem0's listing of a memory, as OpenMemory returned it: with its metadata and user.
        items = [
            {**_summary(m), "metadata": m.metadata or None, "user_id": m.user_id} for m in await _run(listed)
        ]
        return json.dumps(items, indent=2)

    @mcp.tool(description="Delete specific memories by their IDs")
    async def delete_memories(memory_ids: MemoryIds, ctx: Context) -> str:
        scope, _, caller = _caller(ctx)
        writable(caller)
        count = await _run(lambda: service().delete(scope, [str(i) for i in memory_ids]))
        return f"Successfully deleted {count} memories"

    @mcp.tool(description="Delete all memories in the user's memory")
    async def delete_all_memories(ctx: Context) -> str:
        scope, _, caller = _caller(ctx)
        writable(caller)
        await _run(lambda: service().delete_all(scope))
        return "Successfully deleted all memories"

    @mcp.tool(description=ERASE_DESCRIPTION)
    async def erase_user_memories(ctx: Context) -> str:
        scope, _, caller = _caller(ctx)
        writable(caller)
        erased = await _run(lambda: service().erase(scope))
        return json.dumps(
            {"deleted": erased.memories, "related_deleted": erased.related, "remaining": erased.remaining}
        )

    return mcp


def transport_security(host: str, origins: tuple[str, ...] = ()) -> TransportSecuritySettings | None:
    """DNS-rebinding protection on loopback hosts (the CORS origins allowed too); none elsewhere."""
    if host not in LOOPBACK_HOSTS:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *origins],
    )


def session_manager(
    mcp: MCPServer, host: str, max_body_bytes: int, origins: tuple[str, ...] = ()
) -> StreamableHTTPSessionManager:
    """A stateless, JSON-answering session manager for streamable HTTP."""
    # The SDK builds its session manager with the Starlette app it returns; the server mounts only
    # the session manager, under its own route with the user in the path.
    mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=transport_security(host, origins),
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


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: Any,
    headers: dict[str, str] | None = None,
) -> None:
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)


async def _admitted_caller(scope: Scope, receive: Receive, send: Send, keys: ApiKeys) -> Caller | None:
    """The request's caller once its key is valid and its client within its request rate; None after
    answering 401 or 429 otherwise."""
    caller = authenticate(scope["headers"], keys)
    if caller is None:
        await _refuse(scope, receive, send, 401, "Not authenticated")
        return None
    try:
        admit(scope, caller, Access.read)
    except HTTPException as error:
        await _refuse(scope, receive, send, error.status_code, error.detail, dict(error.headers or {}))
        return None
    return caller


async def admitted(scope: Scope, receive: Receive, send: Send, keys: ApiKeys) -> Caller | None:
    """The caller of an MCP request whose key and path ids are valid (their scope within its
    reach); None after answering 401, 429, 422 or 403 otherwise."""
    caller = await _admitted_caller(scope, receive, send, keys)
    if caller is None:
        return None
    params = scope.get("path_params", {})
    errors = invalid_path_ids(params)
    if errors:
        await _refuse(scope, receive, send, 422, errors)
        return None
    try:
        caller.within(MemoryScope(user_id=params["user_id"]))
    except OutsideReach:
        await _refuse(scope, receive, send, 403, "This API key does not reach this user")
        return None
    return caller


def write_calls(body: bytes) -> int:
    """How many calls of a writing tool a JSON-RPC message (or batch) makes; 0 if it is not JSON."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return 0
    messages = parsed if isinstance(parsed, list) else [parsed]
    return sum(
        1
        for message in messages
        if isinstance(message, dict)
        and message.get("method") == "tools/call"
        and isinstance(message.get("params"), dict)
        and message["params"].get("name") in WRITE_TOOLS
    )


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """The request's body messages as received, and the whole body (None past `limit` bytes or when
    the client went away: then the SDK reads the rest and answers)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives back the messages already read, then reads on."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


async def admit_writes(
    scope: Scope, receive: Receive, send: Send, caller: Caller, max_body_bytes: int
) -> Receive | None:
    """A POST's writing tool calls against its client's write rate (the body is read ahead and given
    back); the receive to go on with, or None after answering 429."""
    client = caller.client
    if client is None or client.limits.writes is None or scope["method"] != "POST":
        return receive
    messages, body = await _read_body(receive, max_body_bytes)
    replay = _replaying(messages, receive)
    try:
        for _ in range(write_calls(body) if body is not None else 0):
            client.admit_write()
    except Throttled as error:
        scope[LIMIT_SCOPE_KEY] = error.limit
        refusal = throttled(error)
        await _refuse(scope, replay, send, 429, refusal.detail, dict(refusal.headers or {}))
        return None
    return replay


def _act_as(scope: Scope, caller: Caller, user_id: str, client_name: str) -> None:
    scope[CALLER_KEY] = caller
    scope[USER_KEY] = user_id
    scope[CLIENT_KEY] = client_name


class McpEndpoint:
    """ASGI endpoint of the streamable HTTP route."""

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        keys: ApiKeys,
        stream_idle_seconds: float = STREAM_IDLE_SECONDS,
        max_body_bytes: int = 1024 * 1024,
    ) -> None:
        self.manager = manager
        self.keys = keys
        self.stream_idle_seconds = stream_idle_seconds
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await admitted(scope, receive, send, self.keys)
        if caller is None:
            return
        admitted_receive = await admit_writes(scope, receive, send, caller, self.max_body_bytes)
        if admitted_receive is None:
            return
        receive = admitted_receive
        params = scope["path_params"]
        _act_as(scope, caller, params["user_id"], params["client_name"])
        if scope["method"] == "GET":
            await close_when_idle(self.manager.handle_request, scope, receive, send, self.stream_idle_seconds)
        else:
            await self.manager.handle_request(scope, receive, send)


@dataclass
class SseSession:
    caller: Caller
    user_id: str
    client_name: str


class SseSessions:
    """OpenMemory's SSE transport: sessions opened by GET, fed by POSTed messages."""

    def __init__(
        self,
        mcp: MCPServer,
        keys: ApiKeys,
        host: str,
        max_body_bytes: int,
        origins: tuple[str, ...] = (),
        max_sessions: int = MAX_SSE_SESSIONS,
    ) -> None:
        self.server = mcp._lowlevel_server  # the SDK's own SSE app runs this same server
        self.keys = keys
        self.max_sessions = max_sessions
        self.max_body_bytes = max_body_bytes
        self.transport = SseServerTransport(
            MESSAGES_PATH,
            security_settings=transport_security(host, origins),
            max_request_body_size=max_body_bytes,
        )
        self.sessions: dict[str, SseSession] = {}
        self.open = 0

    async def connect(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await admitted(scope, receive, send, self.keys)
        if caller is None:
            return
        if self.open >= self.max_sessions:
            await _refuse(scope, receive, send, 503, "too many open MCP sessions, retry later")
            return
        params = scope["path_params"]
        session = SseSession(caller, params["user_id"], params["client_name"])
        registered: list[str] = []

        async def registering_send(message: Message) -> None:
            # The transport announces the session's id in its first event (`endpoint`).
            if not registered and message["type"] == "http.response.body":
                found = SESSION_ID.search(message.get("body", b""))
                if found:
                    registered.append(found.group(1).decode())
                    self.sessions[registered[0]] = session
            await send(message)

        self.open += 1
        try:
            async with self.transport.connect_sse(scope, receive, registering_send) as (read, write):
                await self.server.run(read, write, self.server.create_initialization_options())
        except ValueError:
            pass  # refused by the transport's own checks (Host, Origin); it has answered
        finally:
            self.open -= 1
            for session_id in registered:
                self.sessions.pop(session_id, None)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = await _admitted_caller(scope, receive, send, self.keys)
        if caller is None:
            return
        query = scope.get("query_string", b"").decode("latin-1")
        found = re.search(r"(?:^|&)session_id=([0-9a-f]{32})(?:&|$)", query)
        session = self.sessions.get(found.group(1)) if found else None
        params = scope.get("path_params", {})
        if (
            session is None
            or session.caller != caller
            or params.get("user_id", session.user_id) != session.user_id
            or params.get("client_name", session.client_name) != session.client_name
        ):
            # Another key's session is answered as one that does not exist.
            await Response("Could not find session", status_code=404)(scope, receive, send)
            return
        admitted_receive = await admit_writes(scope, receive, send, caller, self.max_body_bytes)
        if admitted_receive is None:
            return
        _act_as(scope, caller, session.user_id, session.client_name)
        await self.transport.handle_post_message(scope, admitted_receive, send)


class SseConnect:
    """ASGI endpoint of `GET /mcp/{client_name}/sse/{user_id}`."""

    def __init__(self, sessions: SseSessions) -> None:
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sessions.connect(scope, receive, send)


class SseMessages:
    """ASGI endpoint of the SSE transport's message posts."""

    def __init__(self, sessions: SseSessions) -> None:
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.sessions.post(scope, receive, send)
