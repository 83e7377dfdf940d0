from __future__ import annotations

import json

import pytest

from services.ingest import service
from services.ingest.service import Rejected
from services.ingest.topics import BadTopic, route, subscriptions

NOW = 1_764_842_400.0


def test_topics_route_to_kinds() -> None:
    assert route("devices/register", "acuvim").kind == "register"
    r = route("acuvim/ACV-AABBCCDDEEFF/telemetry", "acuvim")
    assert (r.kind, r.device_id) == ("telemetry", "ACV-AABBCCDDEEFF")


@pytest.mark.parametrize("topic", [
    "other/ACV-1/telemetry", "acuvim/ACV-1/cmd", "acuvim/ACV-1", "acuvim/ACV-1/telemetry/x",
    "acuvim/a.b/telemetry", "acuvim/a b/telemetry", "acuvim/" + "A" * 33 + "/telemetry",
    "acuvim/Ünï/telemetry", "acuvim//telemetry",
])
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(BadTopic):
        route(topic, "acuvim")


def test_shared_subscriptions_cover_every_device_topic() -> None:
    topics = subscriptions("acuvim", "acuvim-ingest")
    assert "$share/acuvim-ingest/devices/register" in topics
    assert "$share/acuvim-ingest/acuvim/+/resp" in topics
    assert len(topics) == 6
    assert subscriptions("acuvim", None)[0] == "devices/register"


def test_status_accepts_bare_and_json() -> None:
    assert service.status("D", b"online", NOW).status == "online"
    assert service.status("D", b' {"status": "offline", "connection_type": "gsm"}',
                          NOW).connection_type == "gsm"


def test_registration_defaults_heartbeat_interval() -> None:
    reg = service.registration(b'{"device_id": "ACV-1"}', NOW)
    assert reg.heartbeat_interval == 60 and reg.received_at == NOW


def test_a_payload_naming_another_device_is_refused() -> None:
    with pytest.raises(Rejected) as err:
        service.heartbeat("ACV-1", b'{"device_id": "ACV-2"}', NOW)
    assert err.value.reason == "device_mismatch"


def test_live_telemetry_keeps_nulls_and_strings() -> None:
    body = json.dumps({"ts": NOW - 60, "connection": "wifi",
                       "data": {"v1": 230.4, "v2": None, "meter_status": "ok"}}).encode()
    msg = service.telemetry("ACV-1", body, NOW)
    assert msg.source == "live" and msg.connection == "wifi"
    assert msg.readings[0].ts == NOW - 60 and not msg.readings[0].clock_unsynced
    assert msg.readings[0].data == {"v1": 230.4, "v2": None, "meter_status": "ok"}


@pytest.mark.parametrize(("body", "reason"), [
    (b"nope", "not_json"),
    (b'{"data": {"v1": [1]}}', "bad_field"),
    (b'{"source": "sd"}', "empty_telemetry"),
    (b'{"records": []}', "empty_telemetry"),
    (b'{"records": 5}', "bad_field"),
])
def test_bad_telemetry_is_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as err:
        service.telemetry("ACV-1", body, NOW)
    assert err.value.reason == reason
