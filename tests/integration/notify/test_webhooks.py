"""Webhooks against a real HTTP receiver: signed, retried after 5xx, final on 4xx, a rule
paused after repeated failures (and resumed), severity and scope matching, the test endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import nats
from nats.js import JetStreamContext

from libs.common import bus
from libs.common.messages.events import CommandUpdated, DeviceUpdated
from libs.common.subjects import Subjects
from services.notify.delivery import verify
from tests.integration.notify.conftest import (
    PAUSE_AFTER_FAILURES,
    alert_opened,
    create_rule,
    deliveries,
    new_device_id,
)
from tests.integration.notify.receivers import WebhookReceiver
from tests.support.console import Console
from tests.support.waiting import eventually


def webhook(receiver: WebhookReceiver) -> dict[str, Any]:
    return {"kind": "webhook", "url": receiver.url}


async def test_a_delivery_is_signed_and_carries_its_idempotency_key(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, webhook(receiver), ["alert_opened"])
    device_id = new_device_id()
    await alert_opened(js, notify_console, device_id)
    [got] = await eventually(receiver.delivered, what="the webhook")
    assert verify(rule["secret"], got.body, got.headers["x-acuvim-signature"], time.time())
    assert not verify("another-secret", got.body, got.headers["x-acuvim-signature"], time.time())
    # A replayed request is refused by a receiver that checks the timestamp.
    assert not verify(rule["secret"], got.body, got.headers["x-acuvim-signature"],
                      time.time() + 3600)
    body = got.json()
    assert body["event"] == "alert_opened" and body["device_id"] == device_id
    assert body["data"]["severity"] == "critical"
    assert got.headers["x-acuvim-delivery"] == body["id"]
    [logged] = await deliveries(http, rule["id"])
    assert logged["id"] == body["id"] and logged["status"] == "delivered"
    # The secret is shown once: never again in a read.
    again = (await http.get(f"/api/notifications/rules/{rule['id']}")).json()
    assert "secret" not in again


async def test_5xx_is_retried_until_the_receiver_takes_it(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    receiver.script = [500, 503]
    rule = await create_rule(http, webhook(receiver), ["alert_opened"])
    await alert_opened(js, notify_console, new_device_id())
    await eventually(receiver.delivered, what="a delivery after two 5xx")
    assert [r.status for r in receiver.requests] == [500, 503, 200]
    assert len({r.headers["x-acuvim-delivery"] for r in receiver.requests}) == 1
    [logged] = await deliveries(http, rule["id"])
    assert (logged["status"], logged["attempts"]) == ("delivered", 3)


async def test_4xx_is_final_and_logged(notify_console: Console, js: JetStreamContext,
                                       http: httpx.AsyncClient,
                                       receiver: WebhookReceiver) -> None:
    receiver.script = [410]
    rule = await create_rule(http, webhook(receiver), ["command_timed_out"])
    device_id = new_device_id()
    fact = CommandUpdated(occurred_at=time.time(), device_id=device_id, request_id="r-1",
                          command="reboot", status="timeout", error="no answer")
    await bus.publish_fact(js, Subjects(notify_console.bus_root).command_updated(device_id),
                           fact)

    async def failed() -> list[Any]:
        return [d for d in await deliveries(http, rule["id"]) if d["status"] == "failed"]

    [logged] = await eventually(failed, what="a failed delivery")
    assert logged["attempts"] == 1 and "410" in logged["last_error"]
    assert len(receiver.requests) == 1
    assert receiver.requests[0].json()["data"]["command"] == "reboot"


async def test_a_failing_endpoint_pauses_its_rule_which_resumes_on_request(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    receiver.otherwise = 500
    rule = await create_rule(http, webhook(receiver), ["alert_opened"])
    paused_facts: list[bytes] = []
    nc = await nats.connect(notify_console.nats_url)
    sub_subject = Subjects(notify_console.bus_root).notification_rule_paused(rule["id"])

    async def on_paused(msg: Any) -> None:
        paused_facts.append(msg.data)

    await nc.subscribe(sub_subject, cb=on_paused)
    try:
        await alert_opened(js, notify_console, new_device_id())

        async def paused() -> dict[str, Any] | None:
            found: dict[str, Any] = (
                await http.get(f"/api/notifications/rules/{rule['id']}")).json()
            return found if found["state"] == "paused" else None

        state = await eventually(paused, what="a paused rule")
        assert state["consecutive_failures"] >= PAUSE_AFTER_FAILURES
        assert "500" in state["paused_reason"]
        await eventually(lambda: _truthy(paused_facts), what="NotificationRulePaused")
        attempts = len(receiver.requests)
        receiver.otherwise = 200
        reply = await http.put(f"/api/notifications/rules/{rule['id']}",
                               json={"state": "active"})
        assert reply.status_code == 200 and reply.json()["consecutive_failures"] == 0
        await eventually(receiver.delivered, what="the held delivery after resuming")
        assert len(receiver.requests) == attempts + 1
    finally:
        await nc.close()


async def _truthy(items: list[Any]) -> bool:
    return bool(items)


async def test_severity_and_scope_decide_who_hears(
        notify_console: Console, js: JetStreamContext, http: httpx.AsyncClient,
        receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, webhook(receiver), ["alert_opened"], min_severity="critical",
                             scope={"kind": "tag", "tag": "north"})
    north, south = new_device_id(), new_device_id()
    s = Subjects(notify_console.bus_root)
    for device_id, tags in ((north, ["north"]), (south, [])):
        fact = DeviceUpdated(occurred_at=time.time(), device_id=device_id,
                             device={"device_id": device_id, "group_id": None, "tags": tags})
        await bus.publish_fact(js, s.device_updated(device_id), fact)
    await alert_opened(js, notify_console, north, severity="warning")
    await alert_opened(js, notify_console, south, severity="critical")
    await alert_opened(js, notify_console, north, severity="critical")
    [got] = await eventually(receiver.delivered, what="the one matching alert")
    assert got.json()["device_id"] == north and got.json()["data"]["severity"] == "critical"
    assert len(await deliveries(http, rule["id"])) == 1


async def test_the_test_endpoint_sends_a_sample_once(
        notify_console: Console, http: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    rule = await create_rule(http, webhook(receiver), ["device_offline"])
    reply = await http.post(f"/api/notifications/rules/{rule['id']}/test")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "delivered"
    [got] = receiver.requests
    assert got.json()["event"] == "test"
    assert verify(rule["secret"], got.body, got.headers["x-acuvim-signature"], time.time())
    receiver.otherwise = 500
    failed = (await http.post(f"/api/notifications/rules/{rule['id']}/test")).json()
    assert failed["status"] == "failed" and "500" in failed["last_error"]
