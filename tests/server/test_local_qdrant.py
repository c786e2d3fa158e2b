"""Qdrant's local mode shared by threads: reads run side by side, a write runs alone."""

from __future__ import annotations

import threading
from pathlib import Path

from qdrant_client import QdrantClient
from qdrant_client import models as qm

from memory_operator.server.local_qdrant import LockedLocalQdrant, ReadWriteLock, share_between_threads

WAIT = 5.0


def test_readers_share_the_lock() -> None:
    lock = ReadWriteLock()
    inside, leave = threading.Event(), threading.Event()

    def long_read() -> None:
        with lock.reading():
            inside.set()
            leave.wait(WAIT)

    reader = threading.Thread(target=long_read)
    reader.start()
    assert inside.wait(WAIT)
    entered = threading.Event()

    def short_read() -> None:
        with lock.reading():
            entered.set()

    threading.Thread(target=short_read).start()
    assert entered.wait(WAIT), "a read waited for another read"
    leave.set()
    reader.join(WAIT)


def test_a_write_excludes_reads_and_is_not_starved() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reading, release_read = threading.Event(), threading.Event()

    def first_read() -> None:
        with lock.reading():
            reading.set()
            release_read.wait(WAIT)
            order.append("first read done")

    def write() -> None:
        with lock.writing():
            order.append("write")

    def later_read() -> None:
        with lock.reading():
            order.append("later read")

    threads = [threading.Thread(target=first_read)]
    threads[0].start()
    assert reading.wait(WAIT)
    threads.append(threading.Thread(target=write))
    threads[1].start()
    while not lock._writers_waiting:  # the writer is queued before the later reader comes
        threading.Event().wait(0.01)
    threads.append(threading.Thread(target=later_read))
    threads[2].start()
    threading.Event().wait(0.2)
    assert order == [], "nothing runs beside the first read once a write waits"
    release_read.set()
    for thread in threads:
        thread.join(WAIT)
    assert order == ["first read done", "write", "later read"]


def test_local_client_is_shared_between_threads(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path))
    try:
        assert share_between_threads(client) is client
        backend = client._client
        assert isinstance(backend, LockedLocalQdrant)
        share_between_threads(client)
        assert client._client is backend, "wrapped once"
        client.create_collection("c", vectors_config=qm.VectorParams(size=2, distance=qm.Distance.COSINE))

        def upsert(n: int) -> None:
            client.upsert("c", [qm.PointStruct(id=n, vector=[1.0, float(n)], payload={"n": n})])

        threads = [threading.Thread(target=upsert, args=(n,)) for n in range(1, 41)]
        searches = [threading.Thread(target=client.query_points, args=("c", [1.0, 1.0])) for _ in range(20)]
        for thread in [*threads, *searches]:
            thread.start()
        for thread in [*threads, *searches]:
            thread.join(WAIT)
        assert client.count("c").count == 40
    finally:
        client.close()
