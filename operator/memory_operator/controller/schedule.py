"""Deterministic names of scheduled MemoryBackups, so that a retried scheduled job never duplicates one."""

from __future__ import annotations

import datetime
import hashlib

from croniter import croniter

# Object names end up as label values (the backup Job's `memory-operator.io/backup`): 63 characters.
MAX_NAME_LENGTH = 63
TIME_FORMAT = "%Y%m%d%H%M"


def fire_time(schedule: str | None, now: datetime.datetime) -> datetime.datetime:
    """The latest time at or before `now` (UTC) when `schedule` fired; `now` to the minute without one.

    A pod of the CronJob starts seconds or, after retries, minutes after the time it was scheduled for;
    going back to the schedule's tick gives every attempt of one run the same name.
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
