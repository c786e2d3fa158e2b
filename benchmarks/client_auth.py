#!/usr/bin/env python3
"""Cost of the per-request checks of MemoryClients: authentication (the key presented, hashed and
looked up; the store's admin keys compared), the quota (request and write buckets) and the scope check,
with 1, 100 and 10,000 clients configured. Exactly the code each request runs (`authenticate`,
`deps.admit`, `Caller.within`), called in a loop: p50 and p95 per request, in microseconds.

Clients have realistic scopes (ids and prefixes) and quotas high enough that no request is refused.
Loading the clients file (what a reload costs) is timed too.

    python benchmarks/client_auth.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from memory_operator.api.client import ClientGrant
from memory_operator.server.auth import Access, ApiKeys, authenticate
from memory_operator.server.clients import ClientDirectory, key_sha256, parse_clients
from memory_operator.server.deps import admit
from memory_operator.server.store import Scope

SIZES = (1, 100, 10_000)
ADMIN_KEY = "admin-" + "a" * 40
READ_ONLY_KEY = "read-only-" + "r" * 40


def key_of(n: int) -> str:
    return f"client-key-{n:06d}-" + "k" * 32


def grant(n: int) -> ClientGrant:
    return ClientGrant.model_validate(
        {
            "name": f"app-{n}",
            "keySha256": key_sha256(key_of(n)),
            "access": "readWrite",
            "scopes": {"userIds": [f"team-{n}-*", f"owner-{n}"], "agentIds": ["*"], "runIds": ["*"]},
            "quota": {"requestsPerSecond": 1_000_000, "writesPerSecond": 1_000_000},
        }
    )


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 in microseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1e6, cuts[94] * 1e6


def measure(size: int, requests: int, rng: random.Random) -> tuple[float, float, float]:
    grants = [grant(n) for n in range(size)]
    document = json.dumps({"clients": [g.wire() for g in grants]}, separators=(",", ":"))
    started = time.perf_counter()
    directory = ClientDirectory(parse_clients(document))
    reload_seconds = time.perf_counter() - started
    keys = ApiKeys(ADMIN_KEY, READ_ONLY_KEY, clients=directory)
    chosen = [rng.randrange(size) for _ in range(requests)]
    samples = []
    for n in chosen:
        headers = [(b"authorization", f"Bearer {key_of(n)}".encode())]
        scope = Scope(user_id=f"team-{n}-alice")
        asgi: dict[str, object] = {}
        started = time.perf_counter()
        caller = authenticate(headers, keys)
        assert caller is not None
        admit(asgi, caller, Access.write)
        caller.within(scope)
        samples.append(time.perf_counter() - started)
    p50, p95 = percentiles(samples)
    return p50, p95, reload_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{'clients':>8} {'p50 us':>8} {'p95 us':>8} {'file load ms':>13}")
    for size in SIZES:
        p50, p95, load = measure(size, args.requests, rng)
        print(f"{size:>8} {p50:>8.1f} {p95:>8.1f} {load * 1000:>13.1f}")


if __name__ == "__main__":
    main()
