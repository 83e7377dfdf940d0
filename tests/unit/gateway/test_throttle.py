"""Login throttling windows, on a clock the test moves."""

from __future__ import annotations

import pytest

from services.gateway.auth.throttle import DeviceRateLimit, LoginThrottle, Throttled


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_five_account_failures_block_until_the_window_passes() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(5):
        throttle.check("a@x", f"10.0.0.{i}")
        throttle.failed("a@x", f"10.0.0.{i}")
        clock.now_s += 10
    with pytest.raises(Throttled) as caught:
        throttle.check("a@x", "10.0.0.99")
    # The oldest failure (50 s ago) leaves the 15 min window in 850 s.
    assert caught.value.retry_after_s == 850
    assert caught.value.status == 429
    throttle.check("b@x", "10.0.0.99")  # other accounts are not affected
    clock.now_s += 850
    throttle.check("a@x", "10.0.0.99")


def test_a_success_clears_the_account_but_not_the_address() -> None:
    throttle = LoginThrottle(per_account=2, per_address=3, clock=Clock())
    throttle.failed("a@x", "1.1.1.1")
    throttle.succeeded("a@x")
    throttle.failed("a@x", "1.1.1.1")
    throttle.check("a@x", "1.1.1.1")  # one account failure since the success
    throttle.failed("c@x", "1.1.1.1")
    with pytest.raises(Throttled, match="address"):
        throttle.check("d@x", "1.1.1.1")
    throttle.check("d@x", "2.2.2.2")


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.gateway.auth.throttle.MAX_KEYS", 10)
    throttle = LoginThrottle(clock=Clock())
    for i in range(100):
        throttle.failed(f"user{i}@x", f"10.0.0.{i}")
    assert len(throttle.accounts.events) <= 10
    assert len(throttle.addresses.events) <= 10


def test_device_rate_limit_counts_each_device_alone() -> None:
    now = [0.0]
    limit = DeviceRateLimit(limit=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        limit.count("ACV-A")
    with pytest.raises(Throttled) as caught:
        limit.count("ACV-A")
    assert caught.value.retry_after_s == 60
    limit.count("ACV-B")
    now[0] = 61.0
    limit.count("ACV-A")
