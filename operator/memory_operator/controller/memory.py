"""Giving the memory of a burst back to the system.

A burst (hundreds of stores made at once, or every store when the operator starts) parses, renders and
sends thousands of objects. Python frees them, but glibc keeps most of what it held for them in its
heap, where the resident size stays at the burst's peak, and cyclic garbage of the burst waits for a
collection of the oldest generation. When a burst is over, the operator collects it and calls glibc's
`malloc_trim`, which returns the free pages; a quiet operator does nothing. Not during the burst: a
full collection walks the whole heap, CPU the burst's reconciles need.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

logger = logging.getLogger("memory_operator.controller")

# A burst is over when no reconcile ran for this long.
QUIET_SECONDS = 5.0
# Reconciles that never pause (thousands of stores' observations): the heap is trimmed this often.
LONGEST_WITHOUT_TRIM_SECONDS = 300.0

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
    work_done: Callable[[], int],
    trim: Trim | None = None,
    quiet: float = QUIET_SECONDS,
    longest: float = LONGEST_WITHOUT_TRIM_SECONDS,
) -> None:
    """Forever: trim the heap once `work_done` (a count of reconciles) has moved and then stood still
    for `quiet` seconds, or has kept moving for `longest`."""
    trim = trim or malloc_trim()
    if trim is None:
        logger.info("the C library has no malloc_trim: memory freed after bursts stays in its heap")
        return
    seen = trimmed = work_done()
    untrimmed = 0.0
    while True:
        await asyncio.sleep(quiet)
        done = work_done()
        moving, seen = done != seen, done
        if done == trimmed:
            continue
        untrimmed += quiet
        if moving and untrimmed < longest:
            continue
        # Cycles of the burst (tasks, exceptions and their frames) first: the older generations are
        # collected rarely, and until then they pin the pages a trim would return.
        gc.collect()
        trim(0)
        trimmed, untrimmed = done, 0.0
