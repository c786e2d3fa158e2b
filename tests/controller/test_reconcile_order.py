"""The order of reconciles: a store's own change before observations of children, bursts coalesced."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from memory_operator.controller import reconcile
from memory_operator.controller.cache import Cache
from memory_operator.controller.reconcile import Reconciler
from memory_operator.render import RenderSettings


class Recording:
    """A reconciler whose reconcile records its runs; a change of `held` stores waits for `release`."""

    def __init__(self, held: frozenset[str] = frozenset()) -> None:
        kube: Any = object()
        self.reconciler = Reconciler(kube, RenderSettings())
        self.runs: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.held = held

        async def recorded(cache: Cache, namespace: str, name: str, trigger: str) -> str:
            if name in self.held:
                await self.release.wait()
            self.runs.append((name, trigger))
            return "Ready"

        self.reconciler._reconcile = recorded  # type: ignore[method-assign]

    def change(self, name: str) -> asyncio.Task[str | None]:
        return asyncio.create_task(self.reconciler.reconcile(Cache(), "ns", name, trigger="create"))

    def observe(self, name: str, trigger: str = "child") -> asyncio.Task[None]:
        return asyncio.create_task(
            self.reconciler.reconcile_soon(Cache(), "ns", name, trigger=trigger, observation=True)
        )


async def test_observations_wait_for_the_changes_under_way_and_coalesce_meanwhile() -> None:
    recording = Recording(held=frozenset({"new"}))
    change = recording.change("new")
    await asyncio.sleep(0)
    observations = [recording.observe("old") for _ in range(5)]
    await asyncio.sleep(0.05)
    assert recording.runs == []
    recording.release.set()
    await asyncio.gather(change, *observations)
    assert recording.runs == [("new", "create"), ("old", "child")]


async def test_an_observation_with_no_change_under_way_runs_at_once() -> None:
    recording = Recording()
    await recording.observe("old", trigger="timer")
    assert recording.runs == [("old", "timer")]


async def test_an_observation_waits_no_longer_than_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile, "OBSERVATION_WAIT_SECONDS", 0.05)
    recording = Recording(held=frozenset({"stuck"}))
    change = recording.change("stuck")
    await asyncio.wait_for(recording.observe("old"), 5)
    assert recording.runs == [("old", "child")]
    recording.release.set()
    await change


async def test_a_reconcile_asked_for_by_a_user_does_not_wait() -> None:
    recording = Recording(held=frozenset({"new"}))
    change = recording.change("new")
    await asyncio.sleep(0)
    await asyncio.wait_for(recording.reconciler.reconcile_soon(Cache(), "ns", "other", trigger="secret"), 5)
    assert recording.runs == [("other", "secret")]
    recording.release.set()
    await change


async def test_a_reconcile_asked_for_ends_the_wait_of_the_stores_queued_observation() -> None:
    recording = Recording(held=frozenset({"new"}))
    change = recording.change("new")
    await asyncio.sleep(0)
    observation = recording.observe("old")
    await asyncio.sleep(0.05)
    assert recording.runs == []
    await recording.reconciler.reconcile_soon(Cache(), "ns", "old", trigger="policy")
    await asyncio.wait_for(observation, 5)
    assert recording.runs == [("old", "child")]
    recording.release.set()
    await change


async def test_an_observation_queued_while_an_earlier_one_runs_stays_queued_after_it() -> None:
    """The earlier observation's reconcile ends after a second one queued: a third coalesces into the
    second (one reconcile more, no error)."""
    recording = Recording(held=frozenset({"new"}))
    earlier_done, earlier_running = asyncio.Event(), asyncio.Event()
    recorded = recording.reconciler._reconcile

    async def first_held(cache: Cache, namespace: str, name: str, trigger: str) -> str | None:
        if name == "s" and not earlier_done.is_set():
            earlier_running.set()
            await earlier_done.wait()
        return await recorded(cache, namespace, name, trigger)

    recording.reconciler._reconcile = first_held  # type: ignore[method-assign]
    earlier = recording.observe("s")  # no change under way: it runs (and is held)
    await earlier_running.wait()
    change = recording.change("new")
    await asyncio.sleep(0)
    second = recording.observe("s")  # waits for the change
    await asyncio.sleep(0.01)
    earlier_done.set()
    await earlier
    third = recording.observe("s")
    await asyncio.sleep(0.01)
    recording.release.set()
    await asyncio.wait_for(asyncio.gather(change, second, third), 5)
    assert recording.runs == [("s", "child"), ("new", "create"), ("s", "child")]


async def test_reconciles_under_way_are_counted_until_they_end() -> None:
    """The memory trimmer waits for them: a burst's reconciles finish together."""
    recording = Recording(held=frozenset({"new"}))
    changes = [recording.change("new"), recording.change("new")]  # the second waits for the store
    await asyncio.sleep(0.01)
    assert recording.reconciler.under_way == 2
    recording.release.set()
    await asyncio.gather(*changes)
    assert recording.reconciler.under_way == 0
    assert recording.reconciler.reconciles == 2
