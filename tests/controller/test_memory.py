"""The heap is trimmed when a burst of work is over (or after a long one), never while quiet."""

from __future__ import annotations

import asyncio
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
    task = asyncio.create_task(memory.trim_after_work(lambda: done, trims, quiet=0.02, longest=60))
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
    task = asyncio.create_task(memory.trim_after_work(lambda: done, trims, quiet=0.05, longest=60))
    try:
        for _ in range(20):
            done += 1
            await asyncio.sleep(0.01)
        assert trims.pads == []
        await asyncio.sleep(0.15)
        assert trims.pads == [0]
    finally:
        task.cancel()


async def test_reconciles_that_never_pause_are_trimmed_after_the_longest_wait() -> None:
    always_more = itertools.count()  # a reconcile between any two looks
    trims = Trims()
    task = asyncio.create_task(
        memory.trim_after_work(lambda: next(always_more), trims, quiet=0.01, longest=0.1)
    )
    try:
        await asyncio.sleep(0.05)
        assert trims.pads == []
        await asyncio.sleep(0.2)
        assert trims.pads
    finally:
        task.cancel()


def test_glibcs_malloc_trim_is_found_here() -> None:
    trim = memory.malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)
