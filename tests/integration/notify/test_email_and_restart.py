"""E-mail to a real SMTP sink, and a notify restart in the middle of retries losing nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
from nats.js import JetStreamContext

from tests.integration.notify.conftest import (
    SERVICES,
    alert_opened,
    create_rule,
    deliveries,
    new_device_id,
    settled_deliveries,
)
from tests.integration.notify.receivers import SmtpSink, WebhookReceiver
from tests.support.console import Console
from tests.support.waiting import eventually


async def test_an_alert_is_mailed(notify_console: Console, js: JetStreamContext,
                                  http: httpx.AsyncClient, smtp_sink: SmtpSink) -> None:
    rule = await create_rule(http, {"kind": "email", "addresses": ["ops@example.com"]},
                             ["alert_opened"])
    device_id = new_device_id()
    await alert_opened(js, notify_console, device_id)

    async def mailed() -> list[Any]:
        return [m for m in smtp_sink.messages if device_id in str(m[1]["Subject"])]

    [(recipients, message)] = await eventually(mailed, what="the e-mail")
    assert recipients == ["ops@example.com"]
    assert message["Subject"].strip().startswith("[Acuvim] critical alert opened")
    [logged] = await settled_deliveries(http, rule["id"])
    assert logged["status"] == "delivered"
    assert message["X-Acuvim-Delivery"] == logged["id"]
    body = json.loads(message.get_content())
    assert body["device_id"] == device_id and body["event"] == "alert_opened"


async def test_a_restart_in_the_middle_of_retries_loses_and_repeats_nothing(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    receiver.script = [500, 500]
    rule = await create_rule(http, {"kind": "webhook", "url": receiver.url}, ["alert_opened"])
    await alert_opened(js, notify_console, new_device_id())
    await eventually(lambda: _some(receiver.requests), what="a first failed attempt")
    notify_console.kill("notify")
    # A fact while notify is down waits in the stream for its durable consumer.
    await alert_opened(js, notify_console, new_device_id())
    notify_console.start("notify")
    await notify_console.wait_healthy(SERVICES, timeout_s=60)

    async def both_delivered() -> bool:
        return len(await receiver.delivered()) == 2

    await eventually(both_delivered, timeout_s=30, what="both alerts delivered")
    delivered_ids = [r.headers["x-acuvim-delivery"] for r in await receiver.delivered()]
    assert len(set(delivered_ids)) == 2  # each taken once
    log = await settled_deliveries(http, rule["id"])
    assert sorted(d["id"] for d in log) == sorted(delivered_ids)
    assert all(d["status"] == "delivered" for d in log)


async def _some(items: list[Any]) -> bool:
    return bool(items)


async def test_two_replicas_send_each_delivery_once(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    ready_before = notify_console.log("notify").count("notify ready")
    notify_console.start("notify")  # a second replica next to the first
    try:

        async def second_ready() -> bool:
            return notify_console.log("notify").count("notify ready") > ready_before

        await eventually(second_ready, timeout_s=30, what="the second replica")
        rule = await create_rule(http, {"kind": "webhook", "url": receiver.url},
                                 ["alert_opened"])
        for _ in range(30):
            await alert_opened(js, notify_console, new_device_id())

        async def all_delivered() -> bool:
            return len(await receiver.delivered()) >= 30

        await eventually(all_delivered, timeout_s=30, what="30 deliveries")
        ids = [r.headers["x-acuvim-delivery"] for r in receiver.requests]
        assert len(ids) == len(set(ids)) == 30
        assert len(await deliveries(http, rule["id"], limit=100)) == 30
    finally:
        notify_console.stop("notify")
        notify_console.start("notify")
        await notify_console.wait_healthy(SERVICES, timeout_s=60)
