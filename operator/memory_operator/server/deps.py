"""What every route depends on: the memory service, the authenticated caller, shared query parameter
types, the errors each kind of route declares, and validation errors that never repeat the input."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel

from memory_operator.server import models as m
from memory_operator.server.auth import API_KEY_HEADER, Access, Caller, authenticate
from memory_operator.server.clients import Throttled
from memory_operator.server.metrics import CLIENT_SCOPE_KEY, LIMIT_SCOPE_KEY
from memory_operator.server.scope_id import SCOPE_ID_MAX_LENGTH, SCOPE_ID_PATTERN, SCOPE_ID_RULE
from memory_operator.server.store import BackendUnavailable, MemoryService

log = logging.getLogger("memory_operator.server")


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

# The key, as the OpenAPI document declares it: either scheme (mem0's `Authorization: Token` is
# read too; OpenAPI has no name for it). The check itself reads the raw headers, once.
bearer = HTTPBearer(
    auto_error=False,
    description="A read-write or read-only API key; `Authorization: Token <key>` is read too.",
)
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER, auto_error=False, description="The same key, as mem0's server takes it."
)


def throttled(error: Throttled) -> HTTPException:
    """The 429 of a client over its rate; `Retry-After` says when a request would be admitted."""
    return HTTPException(
        429,
        f"Too many requests: this client is over its {error.limit} rate",
        headers={"Retry-After": str(error.retry_after)},
    )


def admit(scope: MutableMapping[str, Any], caller: Caller, level: Access) -> None:
    """A caller's quota and access, in that order: every request counts against the client's request
    rate (refused ones too), a write against its write rate once it may write. The outcome is noted
    in the ASGI scope for the per-client metrics."""
    client = caller.client
    if client is not None:
        scope[CLIENT_SCOPE_KEY] = client.name
    try:
        if client is not None:
            client.admit(write=False)
        if caller.access < level:
            raise HTTPException(403, "This API key is read-only")
        if client is not None and level >= Access.write:
            client.admit_write()
    except Throttled as error:
        scope[LIMIT_SCOPE_KEY] = error.limit
        raise throttled(error) from None


def _caller(request: Request, level: Access) -> Caller:
    caller = authenticate(request.scope["headers"], request.app.state.keys)
    if caller is None:
        raise HTTPException(401, "Not authenticated", headers={"WWW-Authenticate": "Bearer"})
    admit(request.scope, caller, level)
    return caller


def reader(
    request: Request,
    _bearer: Annotated[Any, Security(bearer)] = None,
    _api_key: Annotated[Any, Security(api_key_header)] = None,
) -> Caller:
    return _caller(request, Access.read)


def writer(
    request: Request,
    _bearer: Annotated[Any, Security(bearer)] = None,
    _api_key: Annotated[Any, Security(api_key_header)] = None,
) -> Caller:
    return _caller(request, Access.write)


ReadCaller = Annotated[Caller, Depends(reader)]
WriteCaller = Annotated[Caller, Depends(writer)]

SCOPE_ID_QUERY: dict[str, Any] = {
    "min_length": 1,
    "max_length": SCOPE_ID_MAX_LENGTH,
    "pattern": SCOPE_ID_PATTERN,
    "description": f"A scope id: {SCOPE_ID_RULE}.",
}
UserId = Annotated[str, Query(**SCOPE_ID_QUERY)]
EntityId = Annotated[str | None, Query(**SCOPE_ID_QUERY)]
OptionalUserId = Annotated[
    str | None,
    Query(
        **{**SCOPE_ID_QUERY, "description": f"The owner ({SCOPE_ID_RULE}); without it, all the key reaches."}
    ),
]
PageNumber = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=100)]
AppName = Annotated[str | None, Query(min_length=1, max_length=253, description="an app's name (its id)")]
# Starlette's uuid convertor: a path that is not a UUID (`/api/v1/memories/filter`) matches no
# memory route, so a wrong method on it gets 405, not a 422 about the id.
MEMORY_ID = "{memory_id:uuid}"


def _error(description: str, model: type[BaseModel] = m.ErrorResponse) -> dict[str, Any]:
    return {"model": model, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("No valid API key: missing, unknown, or presented more than once."),
    403: _error("The API key is read-only, or does not reach the scope asked for."),
    429: _error("The client's key is over its request or write rate; retry after `Retry-After`."),
}
STORE_ERRORS: dict[int | str, dict[str, Any]] = {
    503: _error("The memory store is starting or Qdrant is unreachable; retry after `Retry-After`."),
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not a JSON document (or file) the server can read."),
    413: {
        **_error("The body is larger than the server's limit (1 MiB unless configured otherwise)."),
        # Starlette answers in plain text when the declared Content-Length is already too large,
        # in JSON when a streamed body goes over the limit.
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _error("Some memory (or app) is not the caller's, or does not exist.", m.NotFoundResponse),
}
# What each kind of route may answer besides 200 and 422 (which FastAPI declares itself).
READ = {**AUTH_ERRORS, **STORE_ERRORS}
READ_BODY = {**READ, **BODY_ERRORS}
READ_ID = {**READ, **NOT_FOUND}
WRITE_BODY = {**AUTH_ERRORS, **STORE_ERRORS, **BODY_ERRORS}
WRITE_ID = {**AUTH_ERRORS, **STORE_ERRORS, **NOT_FOUND}
WRITE_IDS = {**WRITE_BODY, **NOT_FOUND}


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
    """Refuse query parameters the route does not declare: a misspelt parameter (`userid`) is an
    error, not silently ignored (every parameter upstream clients send is declared)."""
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


MAX_ERRORS_SHOWN = 20


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
