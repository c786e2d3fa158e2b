"""A memory's change history and access log, kept in its own Qdrant payload.

Both live beside the memory (payload keys `history`, `history_truncated`, `access_log`,
`access_counts`), so replicas share them through Qdrant alone, they go wherever the memory goes
(backups, exports) and they disappear with it: deleting or expiring a memory leaves no copy of its
text behind. Both are bounded: the newest entries are kept.

The history stores text changes (`UPDATE` events) only; the `ADD` event is derived from the first
change's old text (or the current text) and the creation time, unless older events were dropped.
The access log records which app (MCP client) searched or listed a memory, as OpenMemory's does;
concurrent accesses of one memory may lose an entry (the log is bookkeeping, not an audit trail).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

HISTORY_KEY = "history"
HISTORY_TRUNCATED_KEY = "history_truncated"
ACCESS_LOG_KEY = "access_log"
ACCESS_COUNTS_KEY = "access_counts"
HISTORY_MAX = 10
ACCESS_LOG_MAX = 20
# Ids of derived ADD events: stable, so that reading the history twice gives the same answer.
ADD_EVENT_NAMESPACE = uuid.UUID("6f1d1d6e-63d5-4a0e-9f8a-1e6f4b0a7c11")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def naive_utc(timestamp: str) -> str:
    """An ISO time in UTC without its offset, as OpenMemory's SQLite returned it (its UI appends `Z`)."""
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.UTC).replace(tzinfo=None).isoformat()


def with_update(payload: Mapping[str, Any], new_text: str) -> dict[str, Any]:
    """The payload keys that record a change of the memory's text from its current one to `new_text`."""
    event = {
        "id": str(uuid.uuid4()),
        "event": "UPDATE",
        "old_memory": payload.get("data"),
        "new_memory": new_text,
        "created_at": payload.get("created_at"),
        "updated_at": now_iso(),
    }
    events = [*_events(payload), event]
    changes: dict[str, Any] = {HISTORY_KEY: events[-HISTORY_MAX:]}
    if len(events) > HISTORY_MAX or payload.get(HISTORY_TRUNCATED_KEY):
        changes[HISTORY_TRUNCATED_KEY] = True
    return changes


def _events(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    events = payload.get(HISTORY_KEY)
    return [dict(e) for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []


def history_of(memory_id: str, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """mem0's history entries of a memory, oldest first."""
    common = {
        "memory_id": memory_id,
        "is_deleted": False,
        "actor_id": payload.get("actor_id"),
        "role": payload.get("role"),
    }
    stored = _events(payload)
    entries: list[dict[str, Any]] = []
    if not payload.get(HISTORY_TRUNCATED_KEY):
        first_text = stored[0].get("old_memory") if stored else payload.get("data")
        entries.append(
            {
                "id": str(uuid.uuid5(ADD_EVENT_NAMESPACE, memory_id)),
                "event": "ADD",
                "old_memory": None,
                "new_memory": first_text,
                "created_at": payload.get("created_at"),
                "updated_at": payload.get("created_at"),
                **common,
            }
        )
    entries.extend({**event, **common} for event in stored)
    return entries


def with_access(payload: Mapping[str, Any], app: str, kind: str, at: str) -> dict[str, Any]:
    """The payload keys that record one access of the memory by `app` (`search` or `list`)."""
    log = payload.get(ACCESS_LOG_KEY)
    earlier = [e for e in log if isinstance(e, Mapping)] if isinstance(log, list) else []
    entry = {"id": str(uuid.uuid4()), "app": app, "type": kind, "at": at}
    counts = access_counts(payload)
    counts[app] = counts.get(app, 0) + 1
    return {ACCESS_LOG_KEY: [entry, *earlier][:ACCESS_LOG_MAX], ACCESS_COUNTS_KEY: counts}


def access_log(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The memory's access log, newest first."""
    log = payload.get(ACCESS_LOG_KEY)
    return [dict(e) for e in log if isinstance(e, Mapping)] if isinstance(log, list) else []


def access_counts(payload: Mapping[str, Any]) -> dict[str, int]:
    """Accesses of the memory by app."""
    counts = payload.get(ACCESS_COUNTS_KEY)
    if not isinstance(counts, Mapping):
        return {}
    return {str(k): int(v) for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
