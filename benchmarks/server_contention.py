#!/usr/bin/env python3
"""Readers' latency beside one heavy writer, through the memory server in embedded mode.

Several readers (each its own user) search and list their memories in a loop; one writer adds the
largest batch a request may carry (32 messages, each embedded and stored) in a loop. The readers'
p50/p95 are printed without the writer and with it, for two ways of sharing Qdrant's local mode:

- `per-call`: the server's way: a read-write lock around each Qdrant call (reads shared, each write
  alone; embedding outside the lock);
- `per-operation`: one lock around every whole memory operation (embedding included), as before.

Everything runs in this process on the bundled all-MiniLM-L6-v2 model, on CPU.

    python benchmarks/server_contention.py [--seconds 15] [--readers 6]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MEM0_TELEMETRY", "false")

import httpx
import uvicorn

from memory_operator.server.app import ServiceSlot, create_app
from memory_operator.server.auth import ApiKeys
from memory_operator.server.build import build_service
from memory_operator.server.config import ServerConfig
from memory_operator.server.limits import MAX_MESSAGES
from memory_operator.server.metrics import ServerMetrics
from memory_operator.server.settings import ServerSettings
from memory_operator.server.store import MemoryService

KEY = "benchmark-key"
TOPICS = ["payments", "search", "billing", "auth", "queues", "storage", "email", "metrics"]
SEED_PER_READER = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000


def fact(n: int) -> str:
    return f"The {TOPICS[n % len(TOPICS)]} service {n} depends on database cluster {n % 5}"


def lock_per_operation(service: MemoryService) -> None:
    """The previous sharing: one lock held for the whole of every memory operation."""
    lock = threading.Lock()
    call = service._call

    def locked_call(kind: str, action: Callable[[], Any]) -> Any:
        with lock:
            return call(kind, action)

    service._call = locked_call  # type: ignore[method-assign]


@contextlib.contextmanager
def serving(service: MemoryService) -> Iterator[str]:
    slot = ServiceSlot(build=lambda: service, service=service)
    port = free_port()
    app = create_app(slot, ApiKeys(KEY), ServerMetrics(), 1024 * 1024, host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def reader(url: str, user: str, stop: threading.Event, samples: list[float]) -> None:
    with client(url) as http:
        n = 0
        while not stop.is_set():
            started = time.perf_counter()
            if n % 2:
                http.get("/memories", params={"user_id": user}).raise_for_status()
            else:
                query = {"query": f"what does {TOPICS[n % len(TOPICS)]} need?", "user_id": user}
                http.post("/search", json=query).raise_for_status()
            samples.append(time.perf_counter() - started)
            n += 1


def writer(url: str, stop: threading.Event, batches: list[float]) -> None:
    with client(url) as http:
        n = 0
        while not stop.is_set():
            messages = [{"role": "user", "content": fact(n * MAX_MESSAGES + i)} for i in range(MAX_MESSAGES)]
            started = time.perf_counter()
            body = {"messages": messages, "user_id": "heavy-writer", "infer": False}
            http.post("/memories", json=body).raise_for_status()
            batches.append(time.perf_counter() - started)
            n += 1


def phase(url: str, readers: int, seconds: float, with_writer: bool) -> tuple[list[float], list[float]]:
    stop = threading.Event()
    samples: list[list[float]] = [[] for _ in range(readers)]
    batches: list[float] = []
    threads = [
        threading.Thread(target=reader, args=(url, f"reader-{r}", stop, samples[r])) for r in range(readers)
    ]
    if with_writer:
        threads.append(threading.Thread(target=writer, args=(url, stop, batches)))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return [s for per_reader in samples for s in per_reader], batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measured phase")
    parser.add_argument("--readers", type=int, default=6, help="concurrent readers, one user each")
    options = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        model = None
        for mode in ("per-call", "per-operation"):
            settings = ServerSettings(api_key=KEY, qdrant_path=Path(scratch) / mode, host="127.0.0.1")
            service = build_service(settings, ServerConfig(), ServerMetrics(), embedding_model=model)
            model = service.memory.embedding_model
            if mode == "per-operation":
                lock_per_operation(service)
            with serving(service) as url, client(url) as http:
                for r in range(options.readers):
                    for start in range(0, SEED_PER_READER, MAX_MESSAGES):
                        count = min(MAX_MESSAGES, SEED_PER_READER - start)
                        messages = [{"role": "user", "content": fact(start + i)} for i in range(count)]
                        body = {"messages": messages, "user_id": f"reader-{r}"}
                        http.post("/memories", json=body).raise_for_status()
                phase(url, options.readers, 2.0, with_writer=False)  # warm up
                for with_writer in (False, True):
                    samples, batches = phase(url, options.readers, options.seconds, with_writer)
                    p50, p95 = percentiles(samples)
                    rate = len(samples) / options.seconds
                    batch = f"{statistics.median(batches) * 1000:.0f}ms" if batches else "-"
                    rows.append(
                        (mode, "with" if with_writer else "without", p50, p95, rate, len(batches), batch)
                    )
            service.client.close()

    print(
        f"{options.readers} readers (search and list, {SEED_PER_READER} memories each), "
        f"{options.seconds:.0f}s per phase; writer: adds of {MAX_MESSAGES} messages; "
        f"all-MiniLM-L6-v2 on CPU ({os.cpu_count()} cores), Qdrant local mode"
    )
    header = ["locking", "writer", "reader p50", "reader p95", "reads/s", "adds", "add p50"]
    print(f"{header[0]:<15}{header[1]:<9}" + "".join(f"{h:>12}" for h in header[2:]))
    for mode, writer_state, p50, p95, rate, adds, batch in rows:
        figures = [f"{p50:.1f}ms", f"{p95:.1f}ms", f"{rate:.1f}", str(adds), batch]
        print(f"{mode:<15}{writer_state:<9}" + "".join(f"{f:>12}" for f in figures))


if __name__ == "__main__":
    main()
