"""A device's side (MQTT) and a user's side (HTTP) of the health service, for its tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import nats
import orjson

from tests.support.console import NATS_URL, Console
from tests.support.mqtt import publish
from tests.support.waiting import eventually


async def register(console: Console, device_id: str, **fields: Any) -> None:
    await publish("devices/register", {"device_id": device_id, **fields})


async def heartbeat(console: Console, device_id: str, **fields: Any) -> None:
    body = {"ts": time.time(), **fields}
    await publish(f"{console.topic_prefix}/{device_id}/heartbeat", body)


async def status(console: Console, device_id: str, body: Any) -> None:
    await publish(f"{console.topic_prefix}/{device_id}/status", body)


async def device_alert(console: Console, device_id: str, **fields: Any) -> None:
    await publish(f"{console.topic_prefix}/{device_id}/alerts", {"ts": time.time(), **fields})


async def device_where(http: httpx.AsyncClient, device_id: str, timeout_s: float = 10.0,
                       **expected: Any) -> dict[str, Any]:
    """The device once it exists and every `expected` field has the expected value."""

    async def probe() -> dict[str, Any]:
        reply = await http.get(f"/api/devices/{device_id}")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        for key, value in expected.items():
            assert body[key] == value, (key, body[key], value)
        return body

    return await eventually(probe, timeout_s=timeout_s, what=f"{device_id} with {expected}")


async def alerts_of(http: httpx.AsyncClient, device_id: str, **query: Any) -> list[Any]:
    reply = await http.get(f"/api/devices/{device_id}/alerts", params=query)
    assert reply.status_code == 200, reply.text
    items: list[Any] = reply.json()["items"]
    return items


class Facts:
    """Facts seen on a subject pattern of the console's bus (core NATS sees JetStream ones)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on(self, subject_part: str) -> list[dict[str, Any]]:
        return [body for subject, body in self.seen if subject_part in subject]


@asynccontextmanager
async def facts(subject: str) -> AsyncIterator[Facts]:
    nc = await nats.connect(NATS_URL)
    found = Facts()

    async def keep(msg: Any) -> None:
        found.seen.append((msg.subject, orjson.loads(msg.data)))

    await nc.subscribe(subject, cb=keep)
    await nc.flush()
    try:
        yield found
    finally:
        await nc.close()
