"""The heap is trimmed when a burst of reconciles has subsided (or after a long one), never while quiet;
the cyclic collector runs less often than by default."""

from __future__ import annotations

import asyncio
import gc
import itertools

from memory_operator.controller import memory


class Trims:
    def __init__(self) -> None:
        self.pads: list[int] = []

    def __call__(self, pad: int) -> int:
        self.pads.append(pad)
        return 1


async def test_the_heap_is_trimmed_once_after_work_and_never_when_quiet() -> None:
    done = 0
    trims = Trims()
    task = asyncio.create_task(memory.trim_after_work(lambda: done, trims, interval=0.02, longest=60))
    try:
        await asyncio.sleep(0.1)
        assert trims.pads == []
        done += 3
        await asyncio.sleep(0.1)
        assert trims.pads == [0]
        await asyncio.sleep(0.1)
        assert trims.pads == [0]
    finally:
        task.cancel()


async def test_the_heap_is_not_trimmed_while_reconciles_go_on() -> None:
    done = 0
    trims = Trims()
    task = asyncio.create_task(memory.trim_after_work(lambda: done, trims, interval=0.05, longest=60))
    try:
        for _ in range(20):
            done += 1
            await asyncio.sleep(0.01)
        assert trims.pads == []
        await asyncio.sleep(0.15)
        assert trims.pads == [0]
    finally:
        task.cancel()


async def test_the_heap_is_not_trimmed_while_reconciles_are_under_way() -> None:
    """A burst's reconciles finish together: intervals that count few finished ones are no sign of its
    end while others still run."""
    done, under_way = 0, 1
    trims = Trims()
    task = asyncio.create_task(
        memory.trim_after_work(lambda: done, trims, interval=0.02, longest=60, busy=lambda: under_way > 0)
    )
    try:
        await asyncio.sleep(0.05)
        done += 3
        await asyncio.sleep(0.15)
        assert trims.pads == []
        under_way = 0
        await asyncio.sleep(0.1)
        assert trims.pads == [0]
    finally:
        task.cancel()


async def test_reconciles_that_never_pause_are_trimmed_after_the_longest_wait() -> None:
    always_more = itertools.count()  # a reconcile between any two looks
    trims = Trims()
    task = asyncio.create_task(
        memory.trim_after_work(lambda: next(always_more), trims, interval=0.01, longest=0.1)
    )
    try:
        await asyncio.sleep(0.05)
        assert trims.pads == []
        await asyncio.sleep(0.2)
        assert trims.pads
    finally:
        task.cancel()


async def test_the_heap_is_trimmed_when_a_burst_subsides_to_a_background() -> None:
    """The drift timers of many stores never let the reconciles stop: a burst is over when they fall
    to a quarter of its pace."""
    burst, background = [0, 40, 80, 120], [121, 122, 123, 124]
    counts = iter(burst + background)
    read: list[int] = []

    def work_done() -> int:
        read.append(next(counts, background[-1] + 1))
        return read[-1]

    trims: list[int] = []
    task = asyncio.create_task(
        memory.trim_after_work(work_done, lambda _: trims.append(read[-1]) or 1, interval=0.001, longest=60)
    )
    try:
        while len(read) < len(burst + background):
            await asyncio.sleep(0.001)
        assert trims[:1] == [121]  # at the first interval of the background, not during the burst
    finally:
        task.cancel()


def test_glibcs_malloc_trim_is_found_here() -> None:
    trim = memory.malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


def test_the_collector_runs_young_collections_less_often_and_keeps_the_older_ratios() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        memory.tune_collector()
        assert gc.get_threshold() == (memory.YOUNG_GENERATION_THRESHOLD, 10, 10)
        assert memory.YOUNG_GENERATION_THRESHOLD > 700
    finally:
        gc.set_threshold(*before)
