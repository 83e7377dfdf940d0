"""Throttling: too many failed logins per account or per client address -> 429; too many
firmware requests per device -> 429.

In memory, per gateway process: with N gateway replicas an attacker gets at most N times the
limits, which still turns a password guess into hours of work; a shared store is not worth a
dependency for that. Sliding windows of failure times; a correct login clears the account's.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from libs.common.errors import TooManyRequests

WINDOW_S = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
# Keys kept at most (each a deque of <= limit floats); beyond it the stalest are forgotten.
MAX_KEYS = 100_000


class Throttled(TooManyRequests):
    """429 with the seconds to wait (the gateway answers them as Retry-After)."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class SlidingWindow:
    """Event times per key over the last `window_s` seconds, at most `limit` kept per key."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.events: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float] | None:
        times = self.events.get(key)
        if times is None:
            return None
        cutoff = self.clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self.events[key]
            return None
        return times

    def retry_after_s(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None when it may now."""
        times = self._recent(key)
        if times is None or len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window_s - self.clock()))

    def record(self, key: str) -> None:
        times = self._recent(key)
        if times is None:
            if len(self.events) >= MAX_KEYS:
                self.events.pop(next(iter(self.events)))
            times = self.events[key] = deque(maxlen=self.limit)
        times.append(self.clock())

    def clear(self, key: str) -> None:
        self.events.pop(key, None)


class LoginThrottle:
    def __init__(self, *, per_account: int = MAX_FAILURES_PER_ACCOUNT,
                 per_address: int = MAX_FAILURES_PER_ADDRESS, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.accounts = SlidingWindow(per_account, window_s, clock)
        self.addresses = SlidingWindow(per_address, window_s, clock)

    def check(self, account: str, address: str) -> None:
        """Raise Throttled when the account or the address has failed too often."""
        for window, key, what in ((self.accounts, account, "account"),
                                  (self.addresses, address, "address")):
            wait_s = window.retry_after_s(key)
            if wait_s is not None:
                raise Throttled(f"too many failed logins for this {what}; "
                                     f"try again in {wait_s} s", wait_s)

    def failed(self, account: str, address: str) -> None:
        self.accounts.record(account)
        self.addresses.record(address)

    def succeeded(self, account: str) -> None:
        self.accounts.clear(account)


# A device checks for updates now and then, and downloads 1-2 MB in Range requests of some
# tens of KiB (resumed after breaks over GSM): 300 requests a minute is far above that, and far
# below what a misbehaving or hostile client would send.
DEVICE_REQUESTS_PER_WINDOW = 300
DEVICE_WINDOW_S = 60.0


class DeviceRateLimit:
    """Requests to the device firmware endpoints, per device id, in memory per gateway."""

    def __init__(self, limit: int = DEVICE_REQUESTS_PER_WINDOW,
                 window_s: float = DEVICE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = SlidingWindow(limit, window_s, clock)

    def count(self, device_id: str) -> None:
        """Count one request; raise RateLimited (429, Retry-After) past the limit."""
        wait_s = self.window.retry_after_s(device_id)
        if wait_s is not None:
            raise Throttled(f"too many firmware requests from {device_id}; "
                                 f"try again in {wait_s} s", wait_s)
        self.window.record(device_id)
