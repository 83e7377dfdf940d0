"""Wait for an outcome instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], *, timeout_s: float = 10.0,
                     interval_s: float = 0.1, what: str = "condition") -> T:
    """Call `probe` until it returns a truthy value (answered) or raises no AssertionError."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = await probe()
            if value:
                return value
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s}s: {last_error!r}")
        await asyncio.sleep(interval_s)
