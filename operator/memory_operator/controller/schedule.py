"""Scheduled backups: the operator creates a store's MemoryBackups itself, on the store's schedule.

Pure: from the store, its MemoryBackups and the time, which backup is due. Each tick's backup has a
deterministic name (`<store>-YYYYMMDDHHMM`), so a tick never gets two. As in CloudNativePG, only the
newest tick counts: after the operator was away, one backup is taken at once for the newest missed
tick and the older ones are skipped. A tick before the store existed is not due, and no backup starts
while another of the store is unfinished (the tick's backup waits for it).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from croniter import croniter

from memory_operator.api.store import MemoryStore
from memory_operator.controller.status import parse_rfc3339

# Object names end up as label values (the backup Job's `memory-operator.io/backup`): 63 characters.
MAX_NAME_LENGTH = 63
TIME_FORMAT = "%Y%m%d%H%M"


def fire_time(schedule: str | None, now: datetime.datetime) -> datetime.datetime:
    """The latest time at or before `now` (UTC) when `schedule` fired; `now` to the minute without one.

    The operator's timer runs seconds or minutes after a tick; going back to the tick gives every
    check of one tick the same backup name.
    """
    now = now.astimezone(datetime.UTC)
    minute = now.replace(second=0, microsecond=0)
    if not schedule:
        return minute
    # croniter's get_prev is strict: start a minute later so that a tick at exactly `minute` counts.
    previous = croniter(schedule, minute + datetime.timedelta(minutes=1)).get_prev(datetime.datetime)
    return previous.astimezone(datetime.UTC)


def scheduled_backup_name(store: str, when: datetime.datetime) -> str:
    """`<store>-YYYYMMDDHHMM` (UTC), with the store part shortened by a stable hash when too long."""
    stamp = when.astimezone(datetime.UTC).strftime(TIME_FORMAT)
    name = f"{store}-{stamp}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(store.encode()).hexdigest()[:8]
    keep = MAX_NAME_LENGTH - len(stamp) - len(digest) - 2
    return f"{store[:keep].rstrip('-')}-{digest}-{stamp}"


def due_backup(
    store: MemoryStore, backups: Sequence[Mapping[str, Any]], now: datetime.datetime
) -> str | None:
    """The name of the MemoryBackup to create now, if one is due."""
    spec = store.spec.backup
    if spec is None or spec.suspend or store.metadata.deletion_timestamp:
        return None
    tick = fire_time(spec.schedule, now)
    created = store.metadata.creation_timestamp
    if created is None or tick < parse_rfc3339(created):
        return None
    name = scheduled_backup_name(store.metadata.name, tick)
    mine = [
        b for b in backups if ((b.get("spec") or {}).get("storeRef") or {}).get("name") == store.metadata.name
    ]
    if any(b["metadata"]["name"] == name for b in mine):
        return None
    if any(((b.get("status") or {}).get("phase") or "Pending") not in ("Completed", "Failed") for b in mine):
        return None
    return name
