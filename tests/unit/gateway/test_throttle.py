"""Login throttling windows, on a clock the test moves."""

from __future__ import annotations

import pytest

from services.gateway.auth.throttle import LoginThrottle, LoginThrottled


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
    with pytest.raises(LoginThrottled) as caught:
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
    with pytest.raises(LoginThrottled, match="address"):
        throttle.check("d@x", "1.1.1.1")
    throttle.check("d@x", "2.2.2.2")


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.gateway.auth.throttle.MAX_KEYS", 10)
    throttle = LoginThrottle(clock=Clock())
    for i in range(100):
        throttle.failed(f"user{i}@x", f"10.0.0.{i}")
    assert len(throttle.accounts.failures) <= 10
    assert len(throttle.addresses.failures) <= 10
