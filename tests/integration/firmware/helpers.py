"""Helpers of the firmware tests: register devices, upload images, fake devices doing OTA."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx

from tests.support.console import Console
from tests.support.esp_image import build_image
from tests.support.mqtt import mqtt_client, publish
from tests.support.waiting import eventually

HARDWARE = "TTGO T-Call v1.4"


def fresh_major() -> int:
    """A major version no other test of the session uses (versions are unique per console)."""
    return random.randrange(1000, 9_999_999)


async def upload(client: httpx.AsyncClient, image: bytes, version: str,
                 **fields: str) -> httpx.Response:
    return await client.post("/api/firmware", files={
        "file": ("firmware.bin", image, "application/octet-stream")},
        data={"version": version, **fields}, timeout=60)


async def uploaded(client: httpx.AsyncClient, version: str, **fields: str) -> dict[str, Any]:
    reply = await upload(client, build_image(version, seed=hash(version) % 1000), version,
                         **fields)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def heartbeat(console: Console, device_id: str, version: str,
                    uptime_s: float = 600.0) -> None:
    await publish(f"{console.topic_prefix}/{device_id}/heartbeat", {
        "ts": int(time.time()), "uptime_s": uptime_s, "firmware_version": version,
        "connection_type": "gsm"})


async def register(console: Console, device_id: str, version: str,
                   hardware: str = HARDWARE) -> None:
    """Register a device over MQTT and wait until the firmware service knows it."""
    await publish("devices/register", {
        "device_id": device_id, "hardware": hardware, "firmware_version": version,
        "heartbeat_interval": 60, "capabilities": ["ota"]})
    await heartbeat(console, device_id, version)

    async def known() -> bool:
        async with httpx.AsyncClient(base_url=console.base_url, timeout=5) as c:
            reply = await c.get("/api/firmware/check", headers={"X-Device-Id": device_id})
            return reply.status_code == 200

    await eventually(known, timeout_s=15, what=f"firmware knows {device_id}")


class FakeDevices:
    """Devices answering `ota_update` as the firmware does: ack, a ranged download in two parts
    (as after a broken GSM link), progress, success, then heartbeats with the version it booted
    (`behaviour[device]`: "ok", "rollback" or "error")."""

    def __init__(self, console: Console, behaviour: dict[str, str], old_version: str) -> None:
        self.console = console
        self.behaviour = behaviour
        self.old_version = old_version
        self.commands: dict[str, dict[str, Any]] = {}
        self.downloaded: dict[str, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _answer(self, client: aiomqtt.Client, device_id: str, command: dict[str, Any],
                      ) -> None:
        resp = f"{self.console.topic_prefix}/{device_id}/resp"
        rid = command["request_id"]

        async def say(status: str, **extra: Any) -> None:
            await client.publish(resp, json.dumps({"request_id": rid, "status": status, **extra}),
                                 qos=1)

        await say("ack")
        if self.behaviour[device_id] == "error":
            await say("error", error="download failed: checksum mismatch")
            return
        self.downloaded[device_id] = await self._download(device_id, command["params"])
        await say("progress", progress=100)
        await say("success")
        booted = (command["params"]["version"] if self.behaviour[device_id] == "ok"
                  else self.old_version)
        for _ in range(40):  # heartbeats after the reboot, until the test ends
            await heartbeat(self.console, device_id, booted, uptime_s=1)
            await asyncio.sleep(0.5)

    async def _download(self, device_id: str, params: dict[str, Any]) -> bytes:
        half = params["size"] // 2
        async with httpx.AsyncClient(timeout=15, headers={"X-Device-Id": device_id}) as http:
            first = await http.get(params["url"], headers={"Range": f"bytes=0-{half - 1}"})
            rest = await http.get(params["url"], headers={"Range": f"bytes={half}-"})
        assert first.status_code == 206 and rest.status_code == 206
        return first.content + rest.content

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeDevices]:
        async with mqtt_client() as client:
            await client.subscribe(f"{self.console.topic_prefix}/+/cmd", qos=1)
            listener = asyncio.create_task(self._listen(client))
            try:
                yield self
            finally:
                listener.cancel()
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(listener, *self._tasks, return_exceptions=True)

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            device_id = str(message.topic).split("/")[1]
            if device_id not in self.behaviour:
                continue
            command = json.loads(message.payload)  # type: ignore[arg-type]
            if command.get("command") != "ota_update":
                continue
            self.commands[device_id] = command
            task = asyncio.create_task(self._answer(client, device_id, command))
            self._tasks.add(task)
