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

# How often the reconciles are counted.
INTERVAL_SECONDS = 5.0
# A burst has subsided when an interval runs at most 1/SUBSIDED_FRACTION of its busiest interval's
# reconciles: none, or the drift timers' steady background (a reconcile a second at 300 stores).
SUBSIDED_FRACTION = 4
# Reconciles that never subside: the heap is trimmed this often.
LONGEST_WITHOUT_TRIM_SECONDS = 300.0

# The cyclic collector's youngest generation is collected after this many more container objects were
# made than freed (CPython's default: 700). Converging 100 new stores, the default ran some 660 young,
# 60 middle and 5 full collections: 2.2 of the operator's 7 CPU seconds, CPU the control plane it
# shares a node with wants meanwhile. At 10,000 the collector took 0.8 s. Cycles wait longer, but a
# burst ends with a full collection anyway (`trim_after_work`).
YOUNG_GENERATION_THRESHOLD = 10_000

Trim = Callable[[int], int]


def tune_collector() -> None:
    """Collect cycles less often than CPython's default; the older generations' ratios stay."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, oldest)


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
    interval: float = INTERVAL_SECONDS,
    longest: float = LONGEST_WITHOUT_TRIM_SECONDS,
    busy: Callable[[], bool] = lambda: False,
) -> None:
    """Forever: trim the heap once the reconciles counted by `work_done` have subsided (an interval
    with at most a quarter of the busiest interval's since the last trim: none, or the drift timers'
    background after a burst) and none is `busy` under way, or after `longest` seconds of reconciles
    that do not subside. A burst's reconciles end together (every store of it waits on the API server
    alike): until then its intervals may count few of them, though hundreds are under way."""
    trim = trim or malloc_trim()
    if trim is None:
        logger.info("the C library has no malloc_trim: memory freed after bursts stays in its heap")
        return
    seen, busiest, untrimmed = work_done(), 0, 0.0
    while True:
        await asyncio.sleep(interval)
        done = work_done()
        ran, seen = done - seen, done
        if not ran and not busiest:
            continue  # quiet, and trimmed since the last work
        busiest, untrimmed = max(busiest, ran), untrimmed + interval
        if (ran * SUBSIDED_FRACTION > busiest or busy()) and untrimmed < longest:
            continue
        # Cycles of the burst (tasks, exceptions and their frames) first: the older generations are
        # collected rarely, and until then they pin the pages a trim would return.
        gc.collect()
        trim(0)
        busiest, untrimmed = 0, 0.0
