"""The heap is trimmed after a period with work, not while the operator is quiet."""

from __future__ import annotations

import asyncio

from memory_operator.controller import memory


async def test_the_heap_is_trimmed_once_after_work_and_never_when_quiet() -> None:
    done = 0
    trims: list[int] = []

    def trim(pad: int) -> int:
        trims.append(pad)
        return 1

    task = asyncio.create_task(memory.trim_after_work(lambda: done, trim, interval=0.02))
    try:
        await asyncio.sleep(0.1)
        assert trims == []
        done += 3
        await asyncio.sleep(0.1)
        assert trims == [0]
    finally:
        task.cancel()


def test_glibcs_malloc_trim_is_found_here() -> None:
    trim = memory.malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)
