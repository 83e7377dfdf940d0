"""Signing, backoff, message shapes and rule requests of the notify service."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import msgspec
import pytest

from libs.common.codec import decode
from libs.common.errors import InvalidInput
from services.notify.delivery import EmailSender, body_of, sign, summary, verify
from services.notify.dispatch import MAX_BACKOFF_S, retry_delay_s
from services.notify.schemas import CreateRule, EmailTarget, Outgoing, TagScope

SECRET = "whsec_" + "ab" * 24


def outgoing(event: str = "alert_opened", **data: object) -> Outgoing:
    return Outgoing(id="d-1", rule_id="r-1", event=event, device_id="ACV-1",
                    occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), data=dict(data),
                    attempts=1, created_at=datetime.now(UTC), target_kind="email", url=None,
                    secret=None, addresses=["ops@example.com", "b@example.com"])


def test_the_signature_is_an_hmac_of_timestamp_and_body() -> None:
    body = b'{"id":"d-1"}'
    header = sign(SECRET, body, 1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


def test_a_receiver_refuses_a_changed_body_a_wrong_secret_and_a_replay() -> None:
    body = b'{"id":"d-1"}'
    now = time.time()
    header = sign(SECRET, body, int(now))
    assert verify(SECRET, body, header, now)
    assert not verify(SECRET, body + b" ", header, now)
    assert not verify("whsec_other", body, header, now)
    assert not verify(SECRET, body, header, now + 301)
    assert not verify(SECRET, body, "garbage", now)


@pytest.mark.parametrize("attempts", [1, 2, 5, 10, 40])
def test_backoff_doubles_with_jitter_and_stays_under_an_hour(attempts: int) -> None:
    nominal = min(MAX_BACKOFF_S, 10 * 2 ** (attempts - 1))
    delays = [retry_delay_s(attempts, 10) for _ in range(200)]
    assert all(nominal / 2 <= d <= nominal for d in delays)
    assert len(set(delays)) > 1  # jitter: replicas and rules do not retry in lockstep


def test_the_body_is_the_documented_shape() -> None:
    body = msgspec.json.decode(body_of(outgoing(severity="critical")))
    assert body == {"id": "d-1", "event": "alert_opened",
                    "occurred_at": "2026-01-02T03:04:05+00:00", "device_id": "ACV-1",
                    "data": {"severity": "critical"}}


def test_an_email_carries_the_delivery_id_and_a_readable_subject() -> None:
    sender = EmailSender("smtp://127.0.0.1:2525", "console@example.com")
    message = sender.message(outgoing(severity="critical", message="meter silent"))
    assert message["To"] == "ops@example.com, b@example.com"
    assert message["Message-ID"] == "<d-1@acuvim-console>"
    assert "critical alert opened on ACV-1: meter silent" in message["Subject"]
    assert summary(outgoing("device_offline")) == "ACV-1 went offline"
    assert summary(outgoing("digest", count=7)) == "7 notifications"


def test_rule_requests_decode_their_tagged_scope_and_target() -> None:
    rule = decode(b'{"name": "n", "events": ["alert_opened"], "scope": {"kind": "tag", '
                  b'"tag": "north"}, "target": {"kind": "email", "addresses": ["a@b.c"]}}',
                  CreateRule)
    assert rule.scope == TagScope(tag="north")
    assert rule.target == EmailTarget(addresses=["a@b.c"])
    assert rule.min_severity == "warning" and rule.digest_minutes == 0
    with pytest.raises(InvalidInput):
        decode(b'{"name": "n", "events": [], "target": {"kind": "webhook", '
               b'"url": "https://x.example"}}', CreateRule)
    with pytest.raises(InvalidInput):
        decode(b'{"name": "n", "events": ["alert_opened"], "target": {"kind": "pager"}}',
               CreateRule)
