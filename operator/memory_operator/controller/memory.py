"""Giving the memory of a burst back to the system.

A burst (hundreds of stores made at once, or every store when the operator starts) parses, renders and
sends thousands of objects. Python frees them, but glibc keeps most of what it held for them in its
heap, where the resident size stays at the burst's peak, and cyclic garbage of the burst waits for a
collection of the oldest generation. After a period with reconciles, the operator collects it and
calls glibc's `malloc_trim`, which returns the free pages; a quiet operator does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

logger = logging.getLogger("memory_operator.controller")

TRIM_INTERVAL_SECONDS = 30.0

Trim = Callable[[int], int]


def malloc_trim() -> Trim | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, other systems)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


async def trim_after_work(
    work_done: Callable[[], int], trim: Trim | None = None, interval: float | None = None
) -> None:
    """Forever: every `interval`, trim the heap if `work_done` (a count of reconciles) moved since."""
    trim = trim or malloc_trim()
    if trim is None:
        logger.info("the C library has no malloc_trim: memory freed after bursts stays in its heap")
        return
    seen = work_done()
    while True:
        await asyncio.sleep(TRIM_INTERVAL_SECONDS if interval is None else interval)
        done = work_done()
        if done != seen:
            seen = done
            # Cycles of the burst (tasks, exceptions and their frames) first: the older generations
            # are collected rarely, and until then they pin the pages a trim would return.
            gc.collect()
            trim(0)
