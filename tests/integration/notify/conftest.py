"""A console of its own for the notification tests: a 2 s quiet period, fast retries, a rule
paused after 3 failed attempts, an SMTP sink; ingest and health for the MQTT path. Webhooks may
reach 127.0.0.0/8, where the tests' receivers listen (any other private address is refused)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from libs.common import bus
from libs.common.messages.events import AlertChanged, DeviceStatusChanged
from libs.common.subjects import Subjects
from tests.integration.notify.receivers import SmtpSink, WebhookReceiver
from tests.support.console import NATS_URL, Console
from tests.support.waiting import eventually

SERVICES = ("ingest", "health", "notify", "gateway")
QUIET_PERIOD_S = 2.0
PAUSE_AFTER_FAILURES = 3
RECEIVERS_NETWORK = "127.0.0.0/8"


@pytest.fixture(scope="package")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="package")
async def notify_console(tmp_path_factory: pytest.TempPathFactory,
                         smtp_sink: SmtpSink) -> AsyncIterator[Console]:
    c = Console.for_session(
        Path(tmp_path_factory.mktemp("notify")),
        ACUVIM_HEALTH_CHECK_INTERVAL_S="1",
        ACUVIM_NOTIFY_QUIET_PERIOD_S=str(QUIET_PERIOD_S),
        ACUVIM_NOTIFY_RETRY_BASE_S="0.3",
        ACUVIM_NOTIFY_PAUSE_AFTER_FAILURES=str(PAUSE_AFTER_FAILURES),
        ACUVIM_SMTP_URL=smtp_sink.url,
        ACUVIM_NOTIFY_ALLOWED_NETWORKS=RECEIVERS_NETWORK,
    )
    c.start(*SERVICES)
    try:
        await c.wait_healthy(SERVICES, timeout_s=60)
        await consumer_ready(c)
        yield c
    finally:
        c.stop_all()
        await c.delete_streams()
        await c.drop_database()


async def consumer_ready(c: Console) -> None:
    """notify's consumer takes only new facts: wait until it exists before making any."""
    nc = await nats.connect(c.nats_url)
    try:
        js = nc.jetstream()

        async def exists() -> bool:
            try:
                await js.consumer_info(Subjects(c.bus_root).events_stream, "notify")
            except Exception:
                return False
            return True

        await eventually(exists, timeout_s=30, what="notify's consumer")
    finally:
        await nc.close()


@pytest.fixture(scope="package")
async def js(notify_console: Console) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(NATS_URL)
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = await WebhookReceiver().start()
    yield r
    await r.stop()


@pytest.fixture
async def http(notify_console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with notify_console.client("operator") as client:
        yield client


def new_device_id() -> str:
    return "ACV-" + uuid.uuid4().hex[:12].upper()


async def create_rule(http: httpx.AsyncClient, target: dict[str, Any],
                      events: list[str], **fields: Any) -> dict[str, Any]:
    reply = await http.post("/api/notifications/rules",
                            json={"name": "test rule", "events": events, "target": target,
                                  **fields})
    assert reply.status_code == 201, reply.text
    rule: dict[str, Any] = reply.json()
    return rule


async def deliveries(http: httpx.AsyncClient, rule_id: str, **query: Any) -> list[Any]:
    reply = await http.get(f"/api/notifications/rules/{rule_id}/deliveries", params=query)
    assert reply.status_code == 200, reply.text
    items: list[Any] = reply.json()["items"]
    return items


async def settled_deliveries(http: httpx.AsyncClient, rule_id: str,
                             **query: Any) -> list[Any]:
    """The delivery log once no delivery is `sending`: a receiver has the request before notify
    has written the answer's outcome."""
    async def settled() -> list[Any]:
        items = await deliveries(http, rule_id, **query)
        assert all(d["status"] != "sending" for d in items), [d["status"] for d in items]
        return items or [None]

    items = await eventually(settled, what="deliveries settled")
    return [d for d in items if d is not None]


async def status_changed(js: JetStreamContext, console: Console, device_id: str, old: str,
                         new: str, occurred_at: float | None = None) -> None:
    fact = DeviceStatusChanged(occurred_at=occurred_at or time.time(), device_id=device_id,
                               old_status=old, new_status=new, reason="sweep")
    await bus.publish_fact(js, Subjects(console.bus_root).device_status_changed(device_id), fact)


async def alert_opened(js: JetStreamContext, console: Console, device_id: str,
                       severity: str = "critical") -> None:
    fact = AlertChanged(occurred_at=time.time(), device_id=device_id,
                        alert={"id": 1, "device_id": device_id, "alert_type": "modbus_error",
                               "severity": severity, "message": "meter not answering"})
    await bus.publish_fact(js, Subjects(console.bus_root).alert_created(device_id), fact)
