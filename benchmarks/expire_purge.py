"""Purge time of the expiration job: server-side delete by filter versus scroll-and-delete-by-id.

Writes the same synthetic memories (mem0's payload layout, small random vectors) twice, applies the
same retention policy once each way, and prints both times and their ratio. By default it runs on
qdrant-client's local mode in memory; `--qdrant-url` runs it against a Qdrant server instead (the
collection `expire-bench` there is dropped and recreated).

    /work/venv/bin/python benchmarks/expire_purge.py --points 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
import uuid
from collections.abc import Callable

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.api.jobs import ExpirationSummary
from memory_operator.api.policy import MemoryPolicySpec
from memory_operator.expire import purge, rules

COLLECTION = "expire-bench"
BATCH = 2000
POLICY = MemoryPolicySpec.model_validate(
    {
        "rules": [
            {"name": "dependencies", "match": {"metadata": {"type": "service-dependency"}}, "keep": True},
            {"name": "incidents", "match": {"metadata": {"type": "incident"}}, "maxAge": "90d"},
            {"name": "temporary", "match": {"categories": ["temporary"]}, "maxAge": "7d"},
            {"name": "sessions", "match": {"runId": "*"}, "maxAge": "7d"},
        ],
        "honorExpirationDate": True,
    }
)


def payload(rng: random.Random, now: dt.datetime) -> dict[str, object]:
    """One memory as mem0 lays it out in Qdrant, with a random kind, age and scope."""
    created = now - dt.timedelta(days=rng.uniform(0, 365))
    text = f"memory {rng.getrandbits(64):x}"
    body: dict[str, object] = {
        "data": text,
        "hash": f"{rng.getrandbits(128):032x}",
        "created_at": created.isoformat(),
        "updated_at": created.isoformat(),
        "user_id": f"user-{rng.randrange(100)}",
        "role": "user",
        "type": rng.choice(["incident", "note", "service-dependency", "preference"]),
        "categories": rng.sample(["temporary", "network", "billing", "ops"], k=rng.randrange(3)),
    }
    if rng.random() < 0.3:
        body["run_id"] = f"session-{rng.randrange(1000)}"
    if rng.random() < 0.2:
        body["expiration_date"] = (now + dt.timedelta(days=rng.randint(-60, 60))).date().isoformat()
    return body


def fill(client: QdrantClient, points: int, dims: int, seed: int, now: dt.datetime) -> None:
    if client.collection_exists(COLLECTION):
        client.delete_collection(COLLECTION)
    client.create_collection(
        COLLECTION, vectors_config=qm.VectorParams(size=dims, distance=qm.Distance.COSINE)
    )
    rng = random.Random(seed)
    for start in range(0, points, BATCH):
        batch = [
            qm.PointStruct(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                vector=[rng.random() for _ in range(dims)],
                payload=payload(rng, now),
            )
            for _ in range(min(BATCH, points - start))
        ]
        client.upsert(COLLECTION, points=batch, wait=True)


def by_filter(client: QdrantClient, now: dt.datetime, local: bool) -> int:
    summary = ExpirationSummary(collection=COLLECTION)
    purge.expire_store(client, COLLECTION, POLICY, summary, now=now, create_indexes=not local)
    return summary.deleted


def by_ids(client: QdrantClient, now: dt.datetime, local: bool) -> int:
    """The naive way: fetch every matching id, then delete those ids in batches."""
    deleted = 0
    for rule in rules.plan(POLICY, now):
        ids: list[qm.ExtendedPointId] = [r.id for r in purge.scroll(client, COLLECTION, rule.filter)]
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            client.delete(COLLECTION, points_selector=qm.PointIdsList(points=chunk), wait=True)
        deleted += len(ids)
    return deleted


def timed(
    make: Callable[[], QdrantClient],
    method: Callable[[QdrantClient, dt.datetime, bool], int],
    args: argparse.Namespace,
) -> tuple[float, int]:
    now = dt.datetime.now(dt.UTC)
    client = make()
    try:
        fill(client, args.points, args.dims, args.seed, now)
        started = time.perf_counter()
        deleted = method(client, now, args.qdrant_url is None)
        elapsed = time.perf_counter() - started
        left = client.count(COLLECTION, exact=True).count
        if args.qdrant_url:
            client.delete_collection(COLLECTION)
        assert deleted + left == args.points, "every point is either deleted or left"
        return elapsed, deleted
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--qdrant-url", help="a Qdrant server instead of local mode in memory")
    args = parser.parse_args()

    def make() -> QdrantClient:
        return QdrantClient(url=args.qdrant_url, timeout=600) if args.qdrant_url else QdrantClient(":memory:")

    where = args.qdrant_url or "qdrant-client local mode (in memory)"
    print(f"{args.points} memories, {args.dims}-dim vectors, {where}")
    filter_time, filter_deleted = timed(make, by_filter, args)
    ids_time, ids_deleted = timed(make, by_ids, args)
    assert filter_deleted == ids_deleted, "both ways delete the same memories"
    print(f"deleted {filter_deleted} of {args.points} by the policy")
    print(f"server-side delete by filter: {filter_time:8.2f} s")
    print(f"scroll + delete by id:        {ids_time:8.2f} s")
    print(f"ratio (scroll+ids / filter):  {ids_time / filter_time:8.2f}x")


if __name__ == "__main__":
    main()
