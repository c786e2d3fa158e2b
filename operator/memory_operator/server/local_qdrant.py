"""Qdrant's local mode (embedded) shared by threads: reads run together, writes one at a time.

Local mode keeps a collection in Python structures (persisted to one SQLite file on writes) and has
no locking of its own. Holding one lock around whole memory operations made every reader wait while
a writer embedded its texts, which is most of an add's time. Here the lock is taken per call to
Qdrant only: embedding happens outside it, reads share it, and a write holds it just for the
in-memory change and the SQLite commit.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

# Calls of QdrantLocal that change nothing; every other call (upsert, delete, set_payload,
# collection changes, close...) is exclusive.
READ_METHODS = frozenset(
    {
        "query_points",
        "query_batch_points",
        "query_points_groups",
        "search_matrix_offsets",
        "search_matrix_pairs",
        "scroll",
        "count",
        "facet",
        "retrieve",
        "get_collection",
        "get_collections",
        "collection_exists",
        "get_collection_aliases",
        "get_aliases",
        "info",
    }
)


class ReadWriteLock:
    """Many readers or one writer; a waiting writer stops new readers from entering, so writes
    are not starved by a steady stream of reads (and each write is short)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            self._condition.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


class LockedLocalQdrant:
    """Stands in for a QdrantClient's local backend, taking the lock around each of its calls."""

    def __init__(self, backend: Any, lock: ReadWriteLock) -> None:
        self._backend = backend
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._backend, name)
        if not callable(attribute):
            return attribute
        guard = self._lock.reading if name in READ_METHODS else self._lock.writing

        @functools.wraps(attribute)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with guard():
                return attribute(*args, **kwargs)

        return locked


def share_between_threads(client: QdrantClient) -> QdrantClient:
    """Make a local-mode client safe to call from many threads (reads concurrently); returns it."""
    # QdrantClient delegates every call to its backend object; mem0 requires a real QdrantClient,
    # so the backend is wrapped rather than the client.
    backend = client._client
    if not isinstance(backend, LockedLocalQdrant):
        client._client = LockedLocalQdrant(backend, ReadWriteLock())  # type: ignore[assignment]
    return client
