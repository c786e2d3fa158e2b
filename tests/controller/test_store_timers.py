"""The operator's timers on stores: the schedule as a table, and the loop that runs it: runs of a store
never overlap, a failed run is tried again sooner, deleted stores are dropped, a paused replica runs
nothing; and the peering verdict as Kopf's."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

from memory_operator.controller import store_timers
from memory_operator.controller.kube import CLUSTER_PEERING, PEERING, Resource
from memory_operator.controller.peering import CHECK_SECONDS, Peering, paused
from memory_operator.controller.store_timers import (
    RETRY_SECONDS,
    StoreTimers,
    TimedStore,
    Timer,
    due,
    next_run,
)
from support.waiting import eventually

ONE = TimedStore("ns", "one", "uid-1")
TWO = TimedStore("ns", "two", "uid-2", backup_schedule=True)
GOING = TimedStore("ns", "going", "uid-3", deleting=True)


async def nothing(_: TimedStore) -> None:
    return None


EVERY_10 = Timer("drift", 10.0, nothing, first_delay=lambda store: 5.0 if store is ONE else 7.0)
BACKUPS = Timer("backups", 30.0, nothing, applies=lambda store: store.backup_schedule)


@pytest.mark.parametrize(
    ("timer", "schedule", "stores", "running", "now", "kept", "ready"),
    [
        # A store new to the timer waits its first delay.
        (EVERY_10, {}, [ONE, TWO], set(), 100.0, {"uid-1": 105.0, "uid-2": 107.0}, []),
        # Due when its time has come, not before.
        (
            EVERY_10,
            {"uid-1": 105.0, "uid-2": 107.0},
            [ONE, TWO],
            set(),
            106.0,
            {"uid-1": 105.0, "uid-2": 107.0},
            [ONE],
        ),
        # Never while its last run is under way.
        (EVERY_10, {"uid-1": 105.0}, [ONE], {"uid-1"}, 200.0, {"uid-1": 105.0}, []),
        # A store being deleted, or gone, is dropped.
        (EVERY_10, {"uid-1": 105.0, "uid-3": 1.0}, [GOING], set(), 200.0, {}, []),
        # A timer runs only on the stores it applies to, at once by default.
        (BACKUPS, {}, [ONE, TWO], set(), 100.0, {"uid-2": 100.0}, [TWO]),
        # A store the timer no longer applies to is dropped (and starts afresh if it applies again).
        (BACKUPS, {"uid-1": 50.0}, [ONE], set(), 100.0, {}, []),
    ],
)
def test_the_schedule(
    timer: Timer,
    schedule: dict[str, float],
    stores: list[TimedStore],
    running: set[str],
    now: float,
    kept: dict[str, float],
    ready: list[TimedStore],
) -> None:
    assert due(timer, schedule, stores, running, now) == (kept, ready)


def test_the_next_run_is_an_interval_after_the_last_ended_and_sooner_after_a_failure() -> None:
    assert next_run(EVERY_10, 100.0, failed=False) == 110.0
    assert next_run(EVERY_10, 100.0, failed=True) == 110.0
    hourly = Timer("hourly", 3600.0, nothing)
    assert next_run(hourly, 100.0, failed=True) == 100.0 + RETRY_SECONDS


class Work:
    """Runs that wait until released; counts the runs under way per store."""

    def __init__(self, failing: bool = False) -> None:
        self.release = asyncio.Event()
        self.under_way: dict[str, int] = {}
        self.most_at_once = 0
        self.runs: list[str] = []
        self.failing = failing

    async def __call__(self, store: TimedStore) -> None:
        self.runs.append(store.name)
        self.under_way[store.uid] = self.under_way.get(store.uid, 0) + 1
        self.most_at_once = max(self.most_at_once, self.under_way[store.uid])
        try:
            await self.release.wait()
            if self.failing:
                raise RuntimeError("refused")
        finally:
            self.under_way[store.uid] -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_runs_of_a_store_never_overlap_and_the_next_waits_an_interval_after_the_last() -> None:
    work = Work()
    stores = [ONE]
    timers = StoreTimers([Timer("drift", 0.3, work)], lambda: stores)
    assert await timers.start_due() == 1
    await settle()
    for _ in range(2):  # the run is still under way: none starts beside it
        await asyncio.sleep(0.35)
        assert await timers.start_due() == 0
    work.release.set()
    await settle()
    assert await timers.start_due() == 0  # an interval after the run ended, not after it started
    await asyncio.sleep(0.35)
    assert await timers.start_due() == 1
    await settle()
    assert work.runs == ["one", "one"]
    assert work.most_at_once == 1
    await timers.stop()


async def test_a_failed_run_is_logged_and_the_store_stays_scheduled(caplog: pytest.LogCaptureFixture) -> None:
    work = Work(failing=True)
    work.release.set()
    timers = StoreTimers([Timer("drift repair", 0.01, work)], lambda: [ONE])
    assert await timers.start_due() == 1
    await settle()
    assert "drift repair of MemoryStore ns/one failed: refused" in caplog.text
    await asyncio.sleep(0.02)
    assert await timers.start_due() == 1
    await timers.stop()


async def test_a_deleted_store_gets_no_new_run() -> None:
    work = Work()
    work.release.set()
    stores = [ONE]
    timers = StoreTimers([Timer("drift", 0.01, work)], lambda: stores)
    assert await timers.start_due() == 1
    await settle()
    stores[:] = [TimedStore("ns", "one", "uid-1", deleting=True)]
    await asyncio.sleep(0.02)
    assert await timers.start_due() == 0
    stores[:] = []
    assert await timers.start_due() == 0
    assert work.runs == ["one"]


async def test_a_paused_replica_starts_no_gated_run_and_catches_up_when_active() -> None:
    work = Work()
    work.release.set()
    active = False

    async def is_active() -> bool:
        return active

    checks = Work()
    checks.release.set()
    ungated = Timer("check", 10.0, checks, gated=False)
    timers = StoreTimers([Timer("drift", 10.0, work), ungated], lambda: [ONE, TWO], is_active)
    assert await timers.start_due() == 2  # only the timer that asks for itself when it writes
    await settle()
    assert sorted(checks.runs) == ["one", "two"] and work.runs == []
    active = True
    assert await timers.start_due() == 2
    await settle()
    assert sorted(work.runs) == ["one", "two"]


async def test_the_loop_runs_until_cancelled_and_stop_cancels_runs_under_way() -> None:
    work = Work()
    timers = StoreTimers([Timer("drift", 10.0, work)], lambda: [ONE])
    loop = asyncio.get_running_loop().create_task(timers.run_forever(tick=0.01))
    await eventually(lambda: work.runs == ["one"])
    loop.cancel()
    await timers.stop()
    assert work.under_way == {"uid-1": 0}


async def test_the_loop_outlives_a_failed_check_of_the_peering(caplog: pytest.LogCaptureFixture) -> None:
    work = Work()
    work.release.set()
    answers = [RuntimeError("403 Forbidden"), True]

    async def is_active() -> bool:
        answer = answers.pop(0) if answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer

    timers = StoreTimers([Timer("drift", 10.0, work)], lambda: [ONE], is_active)
    loop = asyncio.get_running_loop().create_task(timers.run_forever(tick=0.01))
    await eventually(lambda: work.runs == ["one"])
    loop.cancel()
    assert "the stores' timers wait: 403 Forbidden" in caplog.text


def test_spread_delay_is_stable_and_within_the_period() -> None:
    delays = [store_timers.spread_delay(f"uid-{i}", 10.0) for i in range(200)]
    assert all(0 <= d < 10.0 for d in delays)
    assert store_timers.spread_delay("uid-1", 10.0) == delays[1]
    assert min(delays) < 2.0 and max(delays) > 8.0  # spread over the period, not bunched


NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


def peer(priority: int, seconds_ago: float, lifetime: int = 60) -> dict[str, Any]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        (None, False),
        ({}, False),
        ({"me": peer(5, 0)}, False),  # alone
        ({"me": peer(5, 0), "other": peer(3, 0)}, False),  # the highest
        ({"me": peer(5, 0), "other": peer(9, 0)}, True),  # a higher live peer
        ({"me": peer(5, 0), "other": peer(5, 0)}, True),  # the same priority: Kopf pauses both
        ({"me": peer(5, 0), "other": peer(9, 61)}, False),  # a higher peer past its lifetime is dead
        ({"me": peer(5, 0), "other": {**peer(9, 0), "lastseen": "2026-11-30T12:00:00"}}, True),  # no zone
    ],
)
def test_paused_as_kopf_decides(peers: dict[str, Any] | None, expected: bool) -> None:
    assert paused(peers, "me", 5, NOW) is expected


class PeeringObjects:
    def __init__(self, bodies: dict[tuple[str, str | None], dict[str, Any]]) -> None:
        self.bodies = bodies
        self.reads: list[tuple[str, str | None]] = []

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.reads.append((resource.kind, namespace))
        return self.bodies.get((resource.kind, namespace))


async def test_a_replica_is_active_unless_a_peering_object_pauses_it_and_reads_them_seldom() -> None:
    live_higher = {
        "status": {"other": peer(9, 0) | {"lastseen": datetime.datetime.now(datetime.UTC).isoformat()}}
    }
    objects = PeeringObjects({(PEERING.kind, "b"): live_higher})
    peering = Peering("memory-operator", "me", 5, ("a", "b"))
    assert await peering.active(objects, 100.0) is False
    assert objects.reads == [(PEERING.kind, "a"), (PEERING.kind, "b")]
    assert await peering.active(objects, 100.0 + CHECK_SECONDS / 2) is False
    assert len(objects.reads) == 2  # the verdict is kept a while
    objects.bodies.clear()
    assert await peering.active(objects, 100.0 + CHECK_SECONDS) is True
    cluster = PeeringObjects({})
    assert await Peering("memory-operator", "me", 5).active(cluster, 0.0) is True
    assert cluster.reads == [(CLUSTER_PEERING.kind, None)]
