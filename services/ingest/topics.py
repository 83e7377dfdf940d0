"""MQTT topics of the device contract, and which NATS subject each maps to (one place)."""

from __future__ import annotations

import re
from dataclasses import dataclass

REGISTER_TOPIC = "devices/register"
DEVICE_KINDS = ("heartbeat", "telemetry", "status", "alerts", "resp")
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Route:
    kind: str            # register, heartbeat, telemetry, status, alerts, resp
    device_id: str | None  # from the topic; None for devices/register (it is in the payload)


class BadTopic(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def subscriptions(prefix: str, share_group: str | None) -> list[str]:
    topics = [REGISTER_TOPIC, *(f"{prefix}/+/{kind}" for kind in DEVICE_KINDS)]
    if share_group:
        return [f"$share/{share_group}/{topic}" for topic in topics]
    return topics


def route(topic: str, prefix: str) -> Route:
    """Which kind of device message a topic carries; BadTopic names why not."""
    if topic == REGISTER_TOPIC:
        return Route("register", None)
    levels = topic.split("/")
    if len(levels) != 3 or levels[0] != prefix:
        raise BadTopic("unknown_topic")
    _, device_id, kind = levels
    if kind not in DEVICE_KINDS:
        raise BadTopic("unknown_topic")
    if not DEVICE_ID.match(device_id):
        raise BadTopic("bad_device_id")
    return Route(kind, device_id)
