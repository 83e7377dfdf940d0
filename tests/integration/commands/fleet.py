"""A fake device for command tests: it reads its `cmd` topic as the firmware does and answers
on `resp`; and the ways a test brings a device online (through MQTT and the health service)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import httpx
import nats

from libs.common.bus import publish_fact
from libs.common.messages.events import DeviceStatusChanged
from libs.common.subjects import Subjects
from tests.support.console import NATS_URL, Console
from tests.support.mqtt import mqtt_client, publish
from tests.support.waiting import eventually

# How long health gets to show a registered device online before the test stands in for it.
HEALTH_GRACE_S = 3.0
Responder = Callable[["FakeDevice", dict[str, Any]], Awaitable[None]]


class FakeDevice:
    """Subscribes to `{prefix}/{device_id}/cmd` (`+` for a whole fleet) and collects commands;
    `responder`, when given, answers each one as it arrives."""

    def __init__(self, console: Console, device_id: str = "+",
                 responder: Responder | None = None) -> None:
        self.prefix = console.topic_prefix
        self.device_id = device_id
        self.responder = responder
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client: aiomqtt.Client = mqtt_client()
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeDevice:
        await self.client.__aenter__()
        await self.client.subscribe(f"{self.prefix}/{self.device_id}/cmd", qos=1)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _read(self) -> None:
        async for message in self.client.messages:
            command = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            command["device_id"] = str(message.topic).split("/")[1]
            await self.commands.put(command)
            if self.responder is not None:
                await self.responder(self, command)

    async def next_command(self, timeout_s: float = 10) -> dict[str, Any]:
        return await asyncio.wait_for(self.commands.get(), timeout=timeout_s)

    async def answer(self, request_id: str, status: str, device_id: str | None = None,
                     **fields: Any) -> None:
        target = device_id or self.device_id
        body = json.dumps({"request_id": request_id, "status": status, **fields})
        await self.client.publish(f"{self.prefix}/{target}/resp", body, qos=1)


def answer_success(data: Any = None) -> Responder:
    async def respond(device: FakeDevice, command: dict[str, Any]) -> None:
        await device.answer(command["request_id"], "ack", command["device_id"])
        await device.answer(command["request_id"], "success", command["device_id"],
                            data=data if data is not None else {"pong": True})

    return respond


async def bring_online(console: Console, client: httpx.AsyncClient, device_id: str) -> None:
    """Register the device and report it online over MQTT, as the firmware does, and wait until
    health shows it online; while health cannot answer, publish its fact ourselves."""
    await publish("devices/register", {"device_id": device_id, "heartbeat_interval": 60})
    await publish(f"{console.topic_prefix}/{device_id}/status", "online")

    async def online() -> bool:
        reply = await client.get(f"/api/devices/{device_id}")
        if reply.status_code == 503:
            raise HealthMissing
        return reply.status_code == 200 and reply.json().get("status") == "online"

    try:
        await eventually(online, timeout_s=HEALTH_GRACE_S, what=f"{device_id} online")
    except (HealthMissing, AssertionError):
        await publish_status(console, device_id, "online")


class HealthMissing(Exception):
    pass


async def publish_status(console: Console, device_id: str, status: str) -> None:
    """health's DeviceStatusChanged fact, published directly (health not running)."""
    nc = await nats.connect(NATS_URL)
    try:
        subjects = Subjects(console.bus_root)
        fact = DeviceStatusChanged(occurred_at=time.time(), device_id=device_id,
                                   old_status=None, new_status=status, reason="test")
        await publish_fact(nc.jetstream(), subjects.device_status_changed(device_id), fact)
    finally:
        await nc.close()


async def command_status(client: httpx.AsyncClient, device_id: str, request_id: str,
                         ) -> dict[str, Any]:
    reply = await client.get(f"/api/devices/{device_id}/commands/{request_id}")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def wait_status(client: httpx.AsyncClient, device_id: str, request_id: str, status: str,
                      timeout_s: float = 10) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        command = await command_status(client, device_id, request_id)
        assert command["status"] == status, command["status"]
        return command

    return await eventually(reached, timeout_s=timeout_s, what=f"{request_id} {status}")
