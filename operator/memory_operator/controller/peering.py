"""Which replica reconciles, as Kopf's peering decides it, for work the operator runs outside Kopf.

Replicas announce themselves in Kopf's peering object (`ClusterKopfPeering`, or a `KopfPeering` in each
watched namespace), each with a priority and when it was last seen. Kopf pauses a replica while another
live one (seen within its lifetime) has the same or a higher priority; its handlers then stop and its
watches freeze. The operator's own loops (store_timers.py) and the reactions to its own streams
(informer.py, which do not pause) ask `Peering.active` before they act: a paused replica's Kopf indexes
are stale, and two replicas must not reconcile a store at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from memory_operator.controller.kube import CLUSTER_PEERING, PEERING, Resource
from memory_operator.controller.status import parse_rfc3339

# An answer of the peering objects is trusted this long before they are read again.
CHECK_SECONDS = 5.0


class Reader(Protocol):
    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None: ...


def paused(peers: Mapping[str, Any] | None, identity: str, priority: int, now: datetime.datetime) -> bool:
    """Whether Kopf pauses the replica `identity` of `priority`, given a peering object's status
    (peers by identity, each with its priority, lifetime in seconds and when it was last seen)."""
    for peer, seen in (peers or {}).items():
        if peer == identity or not isinstance(seen, Mapping):
            continue
        last = seen.get("lastseen")
        if last is None:
            continue
        alive = parse_rfc3339(str(last)) + datetime.timedelta(seconds=int(seen.get("lifetime", 60))) > now
        if alive and int(seen.get("priority", 0)) >= priority:
            return True
    return False


@dataclass
class Peering:
    """This replica among its peers: the peering object's name, its identity and priority there, and
    the namespaces it watches (none: every namespace, and the cluster-wide object)."""

    name: str
    identity: str
    priority: int
    namespaces: tuple[str, ...] = ()
    _verdict: tuple[float, bool] | None = field(default=None, init=False, repr=False)

    async def active(self, kube: Reader, now: float) -> bool:
        """Whether this replica reconciles now: paused by none of its peering objects. Read at most every
        CHECK_SECONDS (`now` is the event loop's time)."""
        if self._verdict is not None and now - self._verdict[0] < CHECK_SECONDS:
            return self._verdict[1]
        wall = datetime.datetime.now(datetime.UTC)
        verdict = True
        for resource, namespace in self._objects():
            body = await kube.get(resource, namespace, self.name)
            if body is not None and paused(body.get("status"), self.identity, self.priority, wall):
                verdict = False
                break
        self._verdict = (now, verdict)
        return verdict

    def _objects(self) -> list[tuple[Resource, str | None]]:
        if not self.namespaces:
            return [(CLUSTER_PEERING, None)]
        return [(PEERING, namespace) for namespace in self.namespaces]
