"""The cache of most child kinds, fed by the operator's own list+watch loops.

A store's ConfigMap, Services, ServiceAccount, claims, workloads, CronJobs, NetworkPolicies and
PodDisruptionBudget are read by its reconcile (to skip an apply that would change nothing, and to
prune); of their changes only the workloads' start anything (a reconcile when what it reads of them
changed), and drift is repaired by the store's periodic reconcile. Kopf would process each of their
events as it processes a handled one (a worker per object, its handler machinery, its index): some
twenty events per store, most of the operator's work while many stores start at once. Here each event
updates an index of the shape Kopf's indexes have, so `Cache` reads both alike, and is handed to the
kind's reaction, if it has one.

The streams are Kopf's own (`continuous_watch`: the listing, then the watch from its resource version,
with the label selectors of `cache.configure_watches`, Kopf's credentials and timeouts); each run of
one lists anew, and what that listing no longer shows is dropped. The streams start with the operator
(its startup handler; their requests wait for Kopf's login, which follows the startup handlers), and
no handler reads the cache before their first listings end, as no handler runs before Kopf's indexes
are filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import kopf
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients.watching import Bookmark, continuous_watch
from kopf._cogs.structs.references import NamespaceName, Resource

from memory_operator.controller.cache import Packed, Watched, children_index_entry

logger = logging.getLogger(__name__)

# A stream that fails (its kind not served, access refused) is tried again after this long, doubled on
# each failure in a row up to the cap: the error is logged each time, never in a hot loop.
RETRY_SECONDS = 1.0
RETRY_CAP_SECONDS = 60.0

ObjectKey = tuple[str, str]  # namespace, name
IndexEntry = Callable[[Mapping[str, Any]], tuple[Any, Packed] | None]
# What a kind's event starts (given the event's type, None for a listing, and the object), if anything:
# run as a task of its own, so that the stream goes on meanwhile.
Reaction = Callable[[str | None, Mapping[str, Any]], Awaitable[None] | None]


class InformedIndex(Mapping[Any, Sequence[Packed]]):
    """One kind's objects by index key (a store's namespace and name), as `Cache` reads Kopf's."""

    def __init__(self) -> None:
        self._groups: dict[Any, dict[ObjectKey, Packed]] = {}
        self._where: dict[ObjectKey, Any] = {}

    def __getitem__(self, key: Any) -> Sequence[Packed]:
        return tuple(self._groups[key].values())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def keys_in(self, namespace: str | None) -> list[ObjectKey]:
        """The objects held of a namespace (of every namespace: None)."""
        return [key for key in self._where if namespace is None or key[0] == namespace]

    def put(self, key: ObjectKey, entry: tuple[Any, Packed] | None) -> None:
        self.drop(key)
        if entry is not None:
            group, packed = entry
            self._groups.setdefault(group, {})[key] = packed
            self._where[key] = group

    def drop(self, key: ObjectKey) -> None:
        group = self._where.pop(key, None)
        if group is None:
            return
        members = self._groups[group]
        members.pop(key, None)
        if not members:
            del self._groups[group]


class Stream:
    """What one list+watch stream (a kind, in a namespace or cluster-wide) does to its kind's index."""

    def __init__(
        self,
        index: InformedIndex,
        entry: IndexEntry,
        namespace: str | None,
        reaction: Reaction | None = None,
    ) -> None:
        self.index = index
        self.entry = entry
        self.namespace = namespace
        self.reaction = reaction
        self.listed = asyncio.Event()
        self._listing: set[ObjectKey] | None = None

    def begin_listing(self) -> None:
        self._listing = set()

    def take(self, event: Bookmark | Mapping[str, Any]) -> None:
        if isinstance(event, Bookmark):
            self._end_listing()
            return
        kind, body = event.get("type"), event.get("object") or {}
        if kind == "BOOKMARK":
            return
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if kind == "DELETED":
            self.index.drop(key)
        else:
            if kind is None and self._listing is not None:
                self._listing.add(key)
            self.index.put(key, self.entry(body))
        if self.reaction is not None:
            started = self.reaction(kind, body)
            if started is not None:
                _spawn(started)

    def _end_listing(self) -> None:
        """Objects the listing did not show are gone (deleted while no stream was open)."""
        seen = self._listing or set()
        for key in self.index.keys_in(self.namespace):
            if key not in seen:
                self.index.drop(key)
        self._listing = None
        self.listed.set()


class Informers:
    """The informed kinds' indexes, and the streams that keep them."""

    def __init__(self, kinds: Sequence[Watched]) -> None:
        self.kinds = tuple(kinds)
        self.indexes: dict[str, InformedIndex] = {kind.index_id: InformedIndex() for kind in kinds}
        self._reactions: dict[str, Reaction] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: list[Stream] = []

    def react(self, kind: Watched, reaction: Reaction) -> None:
        """Hand each event of the kind to `reaction` (registered before the streams start)."""
        self._reactions[kind.index_id] = reaction

    def start(self, settings: kopf.OperatorSettings, namespaces: Sequence[str] | None) -> None:
        """Start a stream of each kind in each namespace (cluster-wide: None). Starting again does
        nothing."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        for kind in self.kinds:
            for namespace in namespaces if namespaces is not None else (None,):
                stream = Stream(
                    self.indexes[kind.index_id],
                    children_index_entry(kind),
                    namespace,
                    self._reactions.get(kind.index_id),
                )
                self._streams.append(stream)
                self._tasks.append(loop.create_task(_keep(settings, kind, stream)))

    async def listed(self) -> None:
        """Once every stream has listed what exists (at once, ever after)."""
        for stream in self._streams:
            await stream.listed.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._streams.clear()


async def _keep(settings: kopf.OperatorSettings, kind: Watched, stream: Stream) -> None:
    """List and watch, again after every end of the stream (Kopf's reconnect backoff), and after a
    failure later and later."""
    resource = Resource(kind.group, kind.version, kind.plural, kind=kind.kind, namespaced=True)
    retry = RETRY_SECONDS
    while True:
        stopper: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream.begin_listing()
        try:
            async for event in continuous_watch(
                settings=settings,
                resource=resource,
                namespace=NamespaceName(stream.namespace) if stream.namespace else None,
                operator_pause_waiter=stopper,
            ):
                stream.take(event)
                retry = RETRY_SECONDS
        except kopf_errors.APITooManyRequestsError:
            pass
        except Exception as error:  # a stream outlives any one failure
            logger.error(
                "The watch of %s failed; trying again in %.0f s: %s",
                kind.plural,
                retry,
                error,
                extra={"resource": kind.plural, "namespace": stream.namespace},
            )
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY_CAP_SECONDS)
        finally:
            stopper.cancel()
        await asyncio.sleep(settings.watching.reconnect_backoff)


# Reactions under way: the event loop holds tasks only weakly.
_REACTIONS: set[asyncio.Task[None]] = set()


def _spawn(work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    _REACTIONS.add(task)
    task.add_done_callback(_reaction_done)


def _reaction_done(task: asyncio.Task[None]) -> None:
    _REACTIONS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("A reaction to a watch event failed: %r", task.exception(), exc_info=task.exception())
