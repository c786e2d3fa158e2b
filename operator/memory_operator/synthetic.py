"""The scope reserved for the operator's own synthetic memories: those the recall canary writes.

The canary writes its scenario's facts as the user `memory-operator-canary` (one run id per run) and
deletes them when it is done. Retention rules and audits never count or delete them, and the memory
server leaves them out of every listing that is not of that user itself (admin listings, exports,
stats, apps), so that no person sees them and no figure of theirs includes them.
"""

from __future__ import annotations

from qdrant_client import models as qm

CANARY_USER_ID = "memory-operator-canary"
"""The reserved user id. A real user of that name would be hidden the same way: do not use it."""
SCOPE_FIELD = "user_id"
# Each run of the canary has a run id of its own under the reserved user, so that two runs at once
# (the CronJob's and a Helm test's) never read or delete each other's facts.
RUN_ID_PREFIX = "canary-"


def is_synthetic(payload: dict[str, object] | None) -> bool:
    """Whether a memory's payload is in the reserved scope."""
    return (payload or {}).get(SCOPE_FIELD) == CANARY_USER_ID


def synthetic_condition() -> qm.FieldCondition:
    """The Qdrant condition that selects the reserved scope (to put in a filter's `must_not`)."""
    return qm.FieldCondition(key=SCOPE_FIELD, match=qm.MatchValue(value=CANARY_USER_ID))


def without_synthetic(query: qm.Filter | None = None) -> qm.Filter:
    """`query` (or every memory) minus the reserved scope."""
    if query is None:
        return qm.Filter(must_not=[synthetic_condition()])
    excluded = query.must_not if isinstance(query.must_not, list) else [query.must_not]
    kept = [c for c in excluded if c is not None]
    return query.model_copy(update={"must_not": [*kept, synthetic_condition()]})
