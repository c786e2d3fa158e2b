"""Prometheus metrics of the memory server, in a registry of its own (one per app)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Keys of the ASGI scope where authentication notes the request's client (by name, never its key)
# and, for a 429, which of its rates refused it.
CLIENT_SCOPE_KEY = "memory_operator.client"
LIMIT_SCOPE_KEY = "memory_operator.throttled_by"


class ServerMetrics:
    """Request counts and latencies by route template, memory operations by kind, Qdrant errors."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "memory_server_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "memory_server_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.operations = Counter(
            "memory_server_memory_operations",
            "Memory operations that succeeded, by kind (add, search, list, get, update, delete, state).",
            ["kind"],
            registry=self.registry,
        )
        self.qdrant_errors = Counter(
            "memory_server_qdrant_errors",
            "Qdrant calls that failed because Qdrant was unreachable or answered with an error.",
            registry=self.registry,
        )
        self.categorization_failures = Counter(
            "memory_server_categorization_failures",
            "New memories the language model could not file under categories (stored uncategorised).",
            registry=self.registry,
        )
        # Per MemoryClient, by its name (the store's own keys are not counted here).
        self.client_requests = Counter(
            "memory_server_client_requests",
            "Requests authenticated with a MemoryClient's key, by client and status code.",
            ["client", "status"],
            registry=self.registry,
        )
        self.client_denials = Counter(
            "memory_server_client_denials",
            "Requests of a MemoryClient refused with 403 (outside its scopes, or a write with a "
            "read-only key), MCP tool calls refused for the same reasons included.",
            ["client"],
            registry=self.registry,
        )
        self.client_throttles = Counter(
            "memory_server_client_throttles",
            "Requests of a MemoryClient refused with 429, by the rate that refused them (requests, writes).",
            ["client", "limit"],
            registry=self.registry,
        )
        self.clients_reload_errors = Counter(
            "memory_server_clients_reload_errors",
            "Reloads of the clients file that failed (the previous clients were kept).",
            registry=self.registry,
        )

    def client_request(self, client: str, status: int, limit: str | None) -> None:
        """A client's request as it ended: counted, and as a denial or a throttle when it was one."""
        self.client_requests.labels(client=client, status=str(status)).inc()
        if status == 403:
            self.client_denials.labels(client=client).inc()
        elif status == 429:
            self.client_throttles.labels(client=client, limit=limit or "requests").inc()

    def operation(self, kind: str, count: int = 1) -> None:
        self.operations.labels(kind=kind).inc(count)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/api/v1/memories/{memory_id}`), never the raw path."""
    route = scope.get("route")
    # `path_format` is the template without convertors (`{memory_id}`, not `{memory_id:uuid}`).
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request; labels use route templates so cardinality stays bounded."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method=method, route=route, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=route).observe(time.perf_counter() - started)
            client = scope.get(CLIENT_SCOPE_KEY)
            if client is not None:
                self.metrics.client_request(str(client), status, scope.get(LIMIT_SCOPE_KEY))
