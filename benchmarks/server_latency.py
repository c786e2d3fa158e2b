#!/usr/bin/env python3
"""Add and search latency through the memory server (HTTP, embedded mode) beside mem0 called directly.

Both sides run in this process on Qdrant local mode (separate directories) with the same loaded
all-MiniLM-L6-v2 model, so the difference is what the server adds: HTTP, auth, validation, the
payload it keeps, the scope checks.

    python benchmarks/server_latency.py [--count 100]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "false")

import httpx
import uvicorn

from memory_operator.server.app import ServiceSlot, create_app
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service, mem0_config, qdrant_client
from memory_operator.server.config import ServerConfig
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ServerSettings

KEY = "benchmark-key"
TOPICS = ["payments", "search", "billing", "auth", "queues", "storage", "email", "metrics"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000


def timed(count: int, action: Callable[[int], object]) -> list[float]:
    samples = []
    for n in range(count):
        started = time.perf_counter()
        action(n)
        samples.append(time.perf_counter() - started)
    return samples


def text(n: int) -> str:
    return f"The {TOPICS[n % len(TOPICS)]} service {n} depends on database cluster {n % 5}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="operations of each kind on each side")
    count = parser.parse_args().count

    with tempfile.TemporaryDirectory() as scratch:
        server_settings = ServerSettings(api_key=KEY, qdrant_path=Path(scratch) / "server", host="127.0.0.1")
        metrics = ServerMetrics()
        service = build_service(server_settings, ServerConfig(), metrics)
        model = service.memory.embedding_model

        from mem0 import Memory

        direct_settings = ServerSettings(api_key=KEY, qdrant_path=Path(scratch) / "direct")
        direct_client = qdrant_client(direct_settings)
        direct = Memory.from_config(mem0_config(direct_settings, ServerConfig(), direct_client, True))
        direct.embedding_model = model

        slot = ServiceSlot(build=lambda: service)
        slot.service = service
        port = free_port()
        app = create_app(slot, ApiKeys(KEY), metrics, 1024 * 1024, host="127.0.0.1")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)

        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        ) as http:
            # Warm both paths (first embedding, first Qdrant write) before measuring.
            http.post("/memories", json={"messages": "warm up", "user_id": "warm"}).raise_for_status()
            direct.add("warm up", user_id="warm", infer=False)

            results = {
                "add": (
                    timed(
                        count,
                        lambda n: http.post(
                            "/memories", json={"messages": text(n), "user_id": "bench"}
                        ).raise_for_status(),
                    ),
                    timed(count, lambda n: direct.add(text(n), user_id="bench", infer=False)),
                ),
                "search": (
                    timed(
                        count,
                        lambda n: http.post(
                            "/search", json={"query": f"what does {TOPICS[n % 8]} need?", "user_id": "bench"}
                        ).raise_for_status(),
                    ),
                    timed(
                        count,
                        lambda n: direct.search(
                            f"what does {TOPICS[n % 8]} need?", top_k=10, filters={"user_id": "bench"}
                        ),
                    ),
                ),
            }
        server.should_exit = True
        thread.join(timeout=30)
        service.client.close()
        direct_client.close()

    print(f"{count} operations each, Qdrant local mode, all-MiniLM-L6-v2 on CPU ({os.cpu_count()} cores)")
    columns = ["server p50", "server p95", "mem0 p50", "mem0 p95", "p50 ratio", "p95 ratio"]
    print(f"{'operation':<10}" + "".join(f"{c:>12}" for c in columns))
    for name, (through_server, on_mem0) in results.items():
        s50, s95 = percentiles(through_server)
        d50, d95 = percentiles(on_mem0)
        figures = [f"{v:.1f}ms" for v in (s50, s95, d50, d95)] + [f"{s50 / d50:.2f}x", f"{s95 / d95:.2f}x"]
        print(f"{name:<10}" + "".join(f"{f:>12}" for f in figures))


if __name__ == "__main__":
    main()
