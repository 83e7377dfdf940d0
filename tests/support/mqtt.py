"""A device's side of MQTT for tests: publish what the firmware publishes, read its cmd topic."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from tests.support.console import MQTT_URL


def mqtt_client(client_id: str | None = None, **kwargs: Any) -> aiomqtt.Client:
    url = urlsplit(MQTT_URL)
    return aiomqtt.Client(hostname=url.hostname or "127.0.0.1", port=url.port or 1883,
                          identifier=client_id or f"test-{uuid.uuid4().hex[:8]}", **kwargs)


async def publish(topic: str, payload: Any, qos: int = 1, retain: bool = False) -> None:
    """Publish one message (dicts and lists as JSON, str/bytes as they are)."""
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    async with mqtt_client() as client:
        await client.publish(topic, body, qos=qos, retain=retain)
