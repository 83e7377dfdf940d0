from __future__ import annotations

import pytest

from libs.common.bus import subject_matches
from libs.common.subjects import Subjects


@pytest.mark.parametrize(("pattern", "subject", "expected"), [
    ("acuvim.in.resp.*", "acuvim.in.resp.ACV-1", True),
    ("acuvim.in.resp.*", "acuvim.in.heartbeat.ACV-1", False),
    ("acuvim.in.resp.*", "acuvim.in.resp", False),
    ("acuvim.in.resp.*", "acuvim.in.resp.ACV-1.x", False),
    ("acuvim.in.>", "acuvim.in.telemetry", True),
    ("acuvim.in.>", "acuvim.in", False),
    ("acuvim.in.telemetry", "acuvim.in.telemetry", True),
    ("acuvim.*.created.*", "acuvim.alert.created.D", True),
])
def test_nats_wildcards(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


def test_every_event_subject_is_in_the_events_stream() -> None:
    s = Subjects("acuvim")
    facts = [s.device_registered("D"), s.device_updated("D"), s.device_deleted("D"),
             s.device_status_changed("D"), s.heartbeat_received("D"), s.telemetry_received("D"),
             s.alert_created("D"), s.alert_updated("D"), s.alert_resolved("D"),
             s.command_updated("D"), s.config_reported("D"), s.firmware_rollout_updated("R"),
             s.firmware_download("D")]
    for fact in facts:
        assert any(subject_matches(p, fact) for p in s.events_all), fact
    inputs = [s.register("D"), s.heartbeat("D"), s.status("D"), s.alert("D"), s.answer("D"),
              s.telemetry_in]
    for subject in inputs:
        assert subject_matches(s.device_in_all, subject)
        assert not any(subject_matches(p, subject) for p in s.events_all)


def test_streams_take_the_configured_replicas() -> None:
    from libs.common.bus import stream_configs

    assert {c.num_replicas for c in stream_configs(Subjects("acuvim"))} == {1}
    assert {c.num_replicas for c in stream_configs(Subjects("acuvim"), 3)} == {3}
