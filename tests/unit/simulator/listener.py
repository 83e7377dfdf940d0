"""A test's ear on the broker: everything under a topic prefix (and registrations), decoded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from tests.support.mqtt import mqtt_client
from tests.support.waiting import eventually


@dataclass
class Heard:
    topic: str
    body: Any


@dataclass
class Listener:
    prefix: str
    heard: list[Heard] = field(default_factory=list)

    def of(self, device_id: str, kind: str) -> list[Any]:
        if kind == "register":
            return [h.body for h in self.heard if h.topic == "devices/register"
                    and isinstance(h.body, dict) and h.body.get("device_id") == device_id]
        topic = f"{self.prefix}/{device_id}/{kind}"
        return [h.body for h in self.heard if h.topic == topic]

    async def wait(self, device_id: str, kind: str, match: Callable[[Any], bool] = bool,
                   count: int = 1, timeout_s: float = 10.0) -> list[Any]:
        async def probe() -> list[Any]:
            found = [b for b in self.of(device_id, kind) if match(b)]
            return found if len(found) >= count else []

        return await eventually(probe, timeout_s=timeout_s, what=f"{count} {kind} of {device_id}")

    def answers(self, device_id: str, request_id: str) -> list[dict[str, Any]]:
        return [a for a in self.of(device_id, "resp") if a.get("request_id") == request_id]

    async def command(self, device_id: str, command: str, params: dict[str, Any] | None = None,
                      final: tuple[str, ...] = ("success", "error"),
                      timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Send a command as the console does; answer the device's answers up to the last."""
        request_id = uuid.uuid4().hex[:10]
        async with mqtt_client() as client:
            await client.publish(f"{self.prefix}/{device_id}/cmd", json.dumps(
                {"request_id": request_id, "command": command, "params": params or {}}), qos=1)
        await self.wait(device_id, "resp", lambda a: a.get("request_id") == request_id
                        and a.get("status") in final, timeout_s=timeout_s)
        return self.answers(device_id, request_id)


def _decode(payload: Any) -> Any:
    raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


@contextlib.asynccontextmanager
async def listening(prefix: str) -> AsyncIterator[Listener]:
    listener = Listener(prefix)
    ready = asyncio.Event()

    async def listen() -> None:
        async with mqtt_client() as client:
            await client.subscribe([(f"{prefix}/#", 1), ("devices/register", 1)])
            ready.set()
            async for message in client.messages:
                listener.heard.append(Heard(str(message.topic), _decode(message.payload)))

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task
        await _forget_retained({h.topic for h in listener.heard if h.topic.endswith("/status")})


async def _forget_retained(topics: set[str]) -> None:
    """Leave no retained status behind on the shared broker (an empty retained message)."""
    if topics:
        async with mqtt_client() as client:
            for topic in topics:
                await client.publish(topic, b"", qos=1, retain=True)


async def retained(topic: str, timeout_s: float = 5.0) -> Any:
    """The retained message of a topic, as a new subscriber gets it."""
    async with mqtt_client() as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(timeout_s):
            async for message in client.messages:
                return _decode(message.payload)
    return None
