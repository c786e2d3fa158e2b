"""Waiting in async tests for what other tasks bring about, within a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Until `check()` holds; fails after `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")
