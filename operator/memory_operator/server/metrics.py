"""Prometheus metrics of the memory server, in a registry of its own (one per app)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
