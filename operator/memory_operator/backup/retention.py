"""Which completed backups retention prunes: a pure decision over the backups' manifests."""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass

DURATION = re.compile(r"^([1-9][0-9]*)([hdw])$")
UNITS = {"h": datetime.timedelta(hours=1), "d": datetime.timedelta(days=1), "w": datetime.timedelta(weeks=1)}


def parse_duration(text: str) -> datetime.timedelta:
    """`12h`, `30d`, `4w` (the MemoryStore's `retention.maxAge` syntax) as a timedelta."""
    match = DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected a count and a unit h, d or w, e.g. 30d")
    return int(match.group(1)) * UNITS[match.group(2)]


@dataclass(frozen=True)
class CompletedBackup:
    """A backup whose manifest exists, i.e. one that finished; in-progress backups are never candidates."""

    name: str
    time: datetime.datetime


def backups_to_prune(
    backups: Sequence[CompletedBackup],
    now: datetime.datetime,
    max_count: int | None,
    max_age: datetime.timedelta | None,
    keep: str,
) -> list[str]:
    """Names of the backups to delete, oldest first.

    A backup is kept while it is among the `max_count` newest and younger than `max_age`. The backup
    `keep` (the one just taken) is always kept and counts towards `max_count`.
    """
    if max_count is not None and max_count < 1:
        raise ValueError("max_count must be at least 1")
    newest_first = sorted(backups, key=lambda b: (b.time, b.name), reverse=True)
    # The backup just taken takes the first place whatever its clock says, so it is one of `max_count`.
    ordered = [b for b in newest_first if b.name == keep] + [b for b in newest_first if b.name != keep]
    prune: list[str] = []
    for position, backup in enumerate(ordered):
        if backup.name == keep:
            continue
        too_many = max_count is not None and position >= max_count
        too_old = max_age is not None and now - backup.time > max_age
        if too_many or too_old:
            prune.append(backup.name)
    return list(reversed(prune))
