"""Time of the audit (exact duplicates, near duplicates, stale memories) at 10k and 100k memories.

Writes synthetic memories in mem0's payload layout into Qdrant's local mode on disk (what
`memory-operator server --embedded` runs), then runs the audit the expiration job runs and prints its
time, the searches Qdrant ran and what it found. The data: memories spread over users (a few in
sessions), each with a random unit vector (384 dimensions, as all-MiniLM-L6-v2's); a share are exact
copies of another memory of the same user (same hash, same vector), a share are reworded ones (another
hash, the vector nudged to a cosine of about 0.97), a share not updated for a year.
`--qdrant-url` runs it against a Qdrant server instead (its collection `audit-bench` is replaced);
`--qdrant-search` makes local mode find near duplicates as against a server, by Qdrant searches
(slow there: each search scans the collection in Python).

    .venv/bin/python benchmarks/audit.py --memories 10000 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
import uuid

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.api.policy import AuditSpec
from memory_operator.expire import audit

COLLECTION = "audit-bench"
BATCH = 1000
SPEC = AuditSpec.model_validate({"staleAfter": "90d"})


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fill(client: QdrantClient, count: int, args: argparse.Namespace, now: dt.datetime) -> dict[str, int]:
    """Write `count` memories; the number of exact and reworded copies planted, and of stale ones."""
    if client.collection_exists(COLLECTION):
        client.delete_collection(COLLECTION)
    client.create_collection(
        COLLECTION, vectors_config=qm.VectorParams(size=args.dims, distance=qm.Distance.COSINE)
    )
    rng = np.random.default_rng(args.seed)
    users = max(count // args.per_user, 1)
    planted = {"exact": 0, "reworded": 0, "stale": 0}
    recent: dict[int, list[tuple[np.ndarray, str]]] = {}
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        vectors = unit(rng.standard_normal((size, args.dims)).astype(np.float32))
        points = []
        for row in range(size):
            user = int(rng.integers(users))
            vector, text_hash = vectors[row], uuid.UUID(int=int(rng.integers(2**63)) << 64).hex
            earlier = recent.get(user)
            draw = rng.random()
            if earlier and draw < args.duplicates:
                vector, text_hash = earlier[int(rng.integers(len(earlier)))]
                planted["exact"] += 1
            elif earlier and draw < 2 * args.duplicates:
                base, _ = earlier[int(rng.integers(len(earlier)))]
                vector = unit((base + 0.25 * unit(rng.standard_normal((1, args.dims)))[0])[None, :])[0]
                planted["reworded"] += 1
            recent.setdefault(user, []).append((vector, text_hash))
            age = 365 if rng.random() < 0.1 else float(rng.uniform(0, 60))
            planted["stale"] += age > 90
            stamp = (now - dt.timedelta(days=age)).isoformat()
            payload = {
                "data": f"memory {start + row}",
                "hash": text_hash,
                "user_id": f"user-{user}",
                "created_at": stamp,
                "updated_at": stamp,
            }
            points.append(qm.PointStruct(id=str(uuid.uuid4()), vector=vector.tolist(), payload=payload))
        client.upsert(COLLECTION, points=points, wait=True)
    return planted


def bench(count: int, args: argparse.Namespace) -> None:
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="audit-bench-") as directory:
        client = (
            QdrantClient(url=args.qdrant_url, timeout=600)
            if args.qdrant_url
            else QdrantClient(path=directory)
        )
        try:
            started = time.perf_counter()
            planted = fill(client, count, args, now)
            filled = time.perf_counter() - started
            started = time.perf_counter()
            local = not args.qdrant_url and not args.qdrant_search
            summary = audit.audit_collection(client, COLLECTION, SPEC, now=now, dry_run=True, local=local)
            elapsed = time.perf_counter() - started
            if args.qdrant_url:
                client.delete_collection(COLLECTION)
        finally:
            client.close()
    near = summary.near_duplicates
    print(f"{count} memories in {summary.scopes} scopes (written in {filled:.1f} s)")
    print(
        f"  planted: {planted['exact']} exact copies, {planted['reworded']} reworded, "
        f"{planted['stale']} stale"
    )
    print(
        f"  audit:   {elapsed:8.1f} s  ({summary.near_duplicate_searches} Qdrant searches, "
        f"{summary.near_duplicate_searches / elapsed:.0f}/s)"
    )
    print(
        f"  found:   {summary.exact_duplicates.count} exact duplicates, "
        f"{near.count if near else 0} near-duplicate pairs, {summary.stale.count} stale"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of the process so far: {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--per-user", type=int, default=100, help="memories per user on average")
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="share of exact copies (and of reworded)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--qdrant-url", help="a Qdrant server instead of local mode on disk")
    parser.add_argument(
        "--qdrant-search",
        action="store_true",
        help="in local mode too, find near duplicates by Qdrant searches by id (a server's method)",
    )
    args = parser.parse_args()
    where = args.qdrant_url or "qdrant-client local mode on disk (the embedded server's)"
    method = "Qdrant searches by id" if args.qdrant_url or args.qdrant_search else "in-process, per scope"
    print(f"audit benchmark: {args.dims}-dim vectors, {where}, threshold {SPEC.near_duplicate_similarity}")
    print(f"near duplicates: {method}")
    for count in args.memories:
        bench(count, args)


if __name__ == "__main__":
    main()
