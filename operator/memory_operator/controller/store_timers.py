"""The periodic work on every store (drift repair, backup schedule checks), in one loop of the operator.

A Kopf timer per store would keep each store's whole last body in memory for its sake and run a task
per store and timer, and Kopf puts its finalizer on every object with a timer before any handler of it
runs: each new store would wait for that write and its echo before its first reconcile. The loop reads
the stores from an index of a few fields each (`TimedStore`).

A timer's next run on a store is its interval after the last one ended, so a store's runs never
overlap; a failed run is tried again after at most `RETRY_SECONDS`. A store new to a timer waits the
timer's first delay (drift repair spreads its stores' first runs over the second half of a period).
A store being deleted, or gone, is dropped. Among peering replicas, only the one Kopf lets reconcile
writes (`peering.py`): a gated timer's runs start only there; the backup schedule check, which writes
once a tick is due, asks for itself then (a check every 30 s would otherwise read the peering object
as often).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger("memory_operator.controller")

# How often the loop looks for due work (and for new or gone stores).
TICK_SECONDS = 1.0
# A run that failed is tried again after this long at most (as Kopf retries a failed timer).
RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class TimedStore:
    """What the timers know of a store."""

    namespace: str
    name: str
    uid: str
    deleting: bool = False
    backup_schedule: bool = False


def _always(_: TimedStore) -> bool:
    return True


def _at_once(_: TimedStore) -> float:
    return 0.0


@dataclass(frozen=True)
class Timer:
    """Work run on each store it applies to, `interval` seconds after the last run on it ended."""

    name: str
    interval: float
    work: Callable[[TimedStore], Awaitable[None]]
    first_delay: Callable[[TimedStore], float] = _at_once
    applies: Callable[[TimedStore], bool] = _always
    # Whether a run starts only on the replica that reconciles (asked before it starts); work that
    # writes only now and then asks for itself, when it is about to.
    gated: bool = True


def spread_delay(uid: str, period: float) -> float:
    """A delay in [0, period) fixed by the object's uid, to spread many objects' runs over a period."""
    fraction = int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 0x1_0000_0000
    return fraction * period


def due(
    timer: Timer,
    schedule: Mapping[str, float],
    stores: Iterable[TimedStore],
    running: Collection[str],
    now: float,
) -> tuple[dict[str, float], list[TimedStore]]:
    """The timer's schedule (next run by store uid) for the stores it applies to now, and the stores due
    that have no run under way. A store new to the timer is due after the timer's first delay."""
    kept: dict[str, float] = {}
    ready: list[TimedStore] = []
    for store in stores:
        if store.deleting or not timer.applies(store):
            continue
        at = kept[store.uid] = schedule.get(store.uid, now + timer.first_delay(store))
        if at <= now and store.uid not in running:
            ready.append(store)
    return kept, ready


def next_run(timer: Timer, ended: float, failed: bool) -> float:
    return ended + (min(timer.interval, RETRY_SECONDS) if failed else timer.interval)


async def _always_active() -> bool:
    return True


class StoreTimers:
    """Runs every timer on every store it applies to, as scheduled by `due`."""

    def __init__(
        self,
        timers: Sequence[Timer],
        stores: Callable[[], Iterable[TimedStore]],
        active: Callable[[], Awaitable[bool]] = _always_active,
    ) -> None:
        self.timers = timers
        self._stores = stores
        self._active = active
        self._schedules: dict[str, dict[str, float]] = {timer.name: {} for timer in timers}
        self._running: dict[str, set[str]] = {timer.name: set() for timer in timers}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run_forever(self, tick: float = TICK_SECONDS) -> None:
        while True:
            try:
                await self.start_due()
            except Exception as error:  # e.g. the peering object unreadable: nothing runs meanwhile
                logger.warning("the stores' timers wait: %s", error)
            await asyncio.sleep(tick)

    async def start_due(self) -> int:
        """Start the runs due now (none while another replica reconciles); how many started."""
        now = asyncio.get_running_loop().time()
        stores = list(self._stores())
        starting: list[tuple[Timer, TimedStore]] = []
        for timer in self.timers:
            schedule, ready = due(timer, self._schedules[timer.name], stores, self._running[timer.name], now)
            self._schedules[timer.name] = schedule
            starting += [(timer, store) for store in ready]
        if any(timer.gated for timer, _ in starting) and not await self._active():
            starting = [(timer, store) for timer, store in starting if not timer.gated]
        for timer, store in starting:
            self._running[timer.name].add(store.uid)
            task = asyncio.get_running_loop().create_task(self._run(timer, store))
            self._tasks.add(task)  # the event loop holds tasks only weakly
            task.add_done_callback(self._tasks.discard)
        return len(starting)

    async def _run(self, timer: Timer, store: TimedStore) -> None:
        failed = False
        try:
            await timer.work(store)
        except Exception as error:
            failed = True
            logger.warning(
                "%s of MemoryStore %s/%s failed: %s", timer.name, store.namespace, store.name, error
            )
        finally:
            self._running[timer.name].discard(store.uid)
            schedule = self._schedules[timer.name]
            if store.uid in schedule:  # not dropped meanwhile
                schedule[store.uid] = next_run(timer, asyncio.get_running_loop().time(), failed)

    async def stop(self) -> None:
        """Cancel the runs under way."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
