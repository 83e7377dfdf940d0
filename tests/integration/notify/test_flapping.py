"""Flapping control (quiet period 2 s here) and digests, from facts and from a real device."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from nats.js import JetStreamContext

from tests.integration.notify.conftest import (
    QUIET_PERIOD_S,
    create_rule,
    deliveries,
    new_device_id,
    settled_deliveries,
    status_changed,
)
from tests.integration.notify.receivers import WebhookReceiver
from tests.support.console import Console
from tests.support.mqtt import publish
from tests.support.waiting import eventually

EVENTS = ["device_offline", "device_online"]


async def test_a_flapping_device_sends_one_offline_and_one_online(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, {"kind": "webhook", "url": receiver.url}, EVENTS)
    device_id = new_device_id()
    for _ in range(3):  # back within the quiet period each time: nobody hears of it
        await status_changed(js, notify_console, device_id, "online", "offline")
        await status_changed(js, notify_console, device_id, "offline", "online")
    await status_changed(js, notify_console, device_id, "online", "offline")
    [offline] = await eventually(receiver.delivered, timeout_s=QUIET_PERIOD_S + 10,
                                 what="one offline notice")
    assert offline.json()["event"] == "device_offline"
    await status_changed(js, notify_console, device_id, "offline", "online")

    async def both() -> list[Any]:
        got = await receiver.delivered()
        return got if len(got) == 2 else []

    got = await eventually(both, what="the all-clear")
    assert [r.json()["event"] for r in got] == EVENTS
    log = await settled_deliveries(http, rule["id"])
    assert sorted(d["status"] for d in log) == ["cancelled"] * 3 + ["delivered"] * 2


async def test_a_device_back_in_time_sends_no_all_clear_either(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, {"kind": "webhook", "url": receiver.url}, EVENTS)
    device_id = new_device_id()
    await status_changed(js, notify_console, device_id, "online", "offline")
    await status_changed(js, notify_console, device_id, "offline", "online")

    async def cancelled() -> bool:
        return [d["status"] for d in await deliveries(http, rule["id"])] == ["cancelled"]

    await eventually(cancelled, what="the offline notice cancelled")
    await asyncio.sleep(QUIET_PERIOD_S + 1)  # nothing must come: wait past the quiet period
    assert receiver.requests == []


async def test_many_devices_down_at_once_make_one_digest(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, {"kind": "webhook", "url": receiver.url}, ["device_offline"],
                             digest_minutes=1)
    devices = [new_device_id() for _ in range(5)]
    now = time.time()
    for device_id in devices:  # a cell tower down: all at the same moment
        await status_changed(js, notify_console, device_id, "online", "offline", now)
    [digest] = await eventually(receiver.delivered, timeout_s=QUIET_PERIOD_S + 10,
                                what="the digest")
    body = digest.json()
    assert body["event"] == "digest" and body["data"]["count"] == 5
    assert sorted(e["device_id"] for e in body["data"]["events"]) == sorted(devices)
    log = await settled_deliveries(http, rule["id"])
    assert sorted(d["status"] for d in log) == ["bundled"] * 5 + ["delivered"]
    assert {d["digest_id"] for d in log if d["status"] == "bundled"} == {body["id"]}
    # The next one waits for the digest window (a minute): another outage is held meanwhile.
    await status_changed(js, notify_console, new_device_id(), "online", "offline")
    await asyncio.sleep(QUIET_PERIOD_S + 1)
    assert len(receiver.requests) == 1


async def test_a_real_device_that_falls_silent_is_reported_offline(
        notify_console: Console, http: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    """MQTT all the way: registration, silence, health's sweep, notify's webhook."""
    device_id = new_device_id()
    await create_rule(http, {"kind": "webhook", "url": receiver.url}, EVENTS)
    await publish("devices/register", {"device_id": device_id, "heartbeat_interval": 1})

    async def known() -> bool:
        return (await http.get(f"/api/devices/{device_id}")).status_code == 200

    await eventually(known, what="the registered device")
    await publish(f"{notify_console.topic_prefix}/{device_id}/heartbeat", {"ts": time.time()})
    # Online, then offline after 5 missed heartbeats (5 s), then the quiet period (2 s).
    [got] = await eventually(receiver.delivered, timeout_s=30, what="the offline notice")
    assert got.json()["device_id"] == device_id
    assert got.json()["data"]["new_status"] == "offline"
