"""Which events of a store's workloads and Jobs can change what its reconcile decides.

A starting StatefulSet, Deployment or Job reports each step of its pods as a change of its status
(created, scheduled, running, ready, available, counted), and each object the operator applies comes
back once more as the watch's echo of that write. A reconcile reads of them only their metadata
(generation, which a change of the spec moves, labels, annotations, owners, deletion) and a few
status fields: an event that changes none of these cannot change its outcome, and is not worth a
reconcile.

A reconcile that comes to read another status field of a child must name it in `STATUS_FIELDS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# The status fields each kind's readers use: status.workload and upgrade.rolled for the workloads,
# results (finished, when) and the restore and bootstrap steps for Jobs.
STATUS_FIELDS: Mapping[str, tuple[str, ...]] = {
    "StatefulSet": ("observedGeneration", "readyReplicas", "updatedReplicas"),
    "Deployment": ("observedGeneration", "readyReplicas", "updatedReplicas"),
    "Job": ("active", "succeeded", "failed", "startTime", "completionTime", "conditions"),
}
# Metadata the server changes with every write, status writes included.
VOLATILE_METADATA = frozenset({"resourceVersion", "managedFields"})


def fingerprint(kind: str, body: Mapping[str, Any]) -> str:
    """A digest of what a reconcile reads of the object: equal digests, equal decisions."""
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in VOLATILE_METADATA}
    seen = body.get("status") or {}
    status = {name: seen.get(name) for name in STATUS_FIELDS.get(kind, ())}
    if "conditions" in status:
        status["conditions"] = sorted(
            (c.get("type"), c.get("status"), c.get("lastTransitionTime")) for c in status["conditions"] or []
        )
    # A change of the spec moves the generation: the spec itself need not be read.
    canonical = json.dumps({"metadata": meta, "status": status}, sort_keys=True, default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


class ChildEvents:
    """The last digest seen of each child, by uid: from its events and from the operator's own writes."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def is_news(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Whether the event can change a reconcile's outcome: a deletion, or a change of what a
        reconcile reads since the last event or write of the object. A listing (no type: the watch
        started, or started again after a gap) is news too, unless it tells nothing new."""
        uid = str((body.get("metadata") or {}).get("uid"))
        if event_type == "DELETED":
            self._seen.pop(uid, None)
            return True
        digest = fingerprint(str(body.get("kind")), body)
        if self._seen.get(uid) == digest:
            return False
        self._seen[uid] = digest
        return True

    def written(self, body: Mapping[str, Any]) -> None:
        """The object as the operator's write left it: the watch's echo of that write is not news."""
        kind = str(body.get("kind"))
        if kind in STATUS_FIELDS:
            self._seen[str(body["metadata"]["uid"])] = fingerprint(kind, body)
