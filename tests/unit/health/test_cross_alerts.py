"""Which rollout pauses raise a console alert, and on which device."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.common.codec import decode, encode
from services.health.rollout_alerts import RolloutDevice, RolloutView, SelfPause, self_pause

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FAILED_REASON = "2 devices failed in stage 2 (allowed 1): paused for an operator"


def device(device_id: str, state: str, stage: int = 1, after_s: float = 0) -> RolloutDevice:
    return RolloutDevice(device_id=device_id, stage=stage, state=state,
                         updated_at=T0 + timedelta(seconds=after_s))


def rollout(reason: str | None, devices: list[RolloutDevice], state: str = "paused",
            current_stage: int = 1) -> RolloutView:
    return RolloutView(id="r1", version="2.0.0", state=state, reason=reason,
                       current_stage=current_stage, devices=devices)


def test_the_newest_failure_of_the_pausing_stage_is_the_device() -> None:
    devices = [device("A", "failed", stage=0, after_s=50), device("B", "timed_out", after_s=10),
               device("C", "rolled_back", after_s=20), device("D", "succeeded", after_s=30),
               device("E", "sent", after_s=40)]
    assert self_pause(rollout(FAILED_REASON, devices)) == SelfPause(device_id="C",
                                                                    reason=FAILED_REASON)


def test_a_failure_of_an_earlier_stage_is_named_when_the_stage_has_none() -> None:
    devices = [device("A", "failed", stage=0), device("B", "queued")]
    assert self_pause(rollout(FAILED_REASON, devices)) == SelfPause(device_id="A",
                                                                    reason=FAILED_REASON)


def test_no_alert_for_an_operator_pause_or_anything_but_a_pause() -> None:
    failed = [device("A", "failed")]
    assert self_pause(rollout("paused by operator@example.com", failed)) is None
    assert self_pause(rollout("paused by an operator", failed)) is None
    assert self_pause(rollout(None, failed, state="running")) is None
    assert self_pause(rollout(FAILED_REASON, failed, state="running")) is None
    assert self_pause(rollout(FAILED_REASON, [device("A", "queued")])) is None
    assert self_pause(None) is None


def test_the_firmware_answer_decodes_with_what_health_does_not_read() -> None:
    answer = {"id": "r1", "version": "2.0.0", "state": "paused", "reason": FAILED_REASON,
              "stages": [50, 100], "current_stage": 1, "counts": {"failed": 2},
              "max_concurrent": 2, "devices": [
                  {"device_id": "A", "stage": 1, "state": "failed", "request_id": None,
                   "error": "no", "updated_at": "2024-05-01T12:00:00+00:00"}]}
    view = decode(encode(answer), RolloutView)
    assert view.devices == [device("A", "failed")]
    assert self_pause(view) == SelfPause(device_id="A", reason=FAILED_REASON)
