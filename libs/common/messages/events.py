"""Facts the console publishes for other systems (stream EVENTS, subjects in `subjects.py`).

Every fact carries `schema_version` and `occurred_at` (epoch seconds). Payload details that the
owning service shapes (a device record, an alert) travel as plain JSON objects so that adding a
column never breaks a subscriber.
"""

from __future__ import annotations

from typing import Any

import msgspec

from libs.common.messages.device import Heartbeat

SCHEMA_VERSION = 1


class Fact(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    occurred_at: float


class DeviceRegistered(Fact, frozen=True, kw_only=True):
    device_id: str
    first_seen: bool
    device: dict[str, Any]


class DeviceUpdated(Fact, frozen=True, kw_only=True):
    device_id: str
    device: dict[str, Any]


class DeviceDeleted(Fact, frozen=True, kw_only=True):
    device_id: str


class DeviceStatusChanged(Fact, frozen=True, kw_only=True):
    device_id: str
    old_status: str | None
    new_status: str
    reason: str


class HeartbeatReceived(Fact, frozen=True, kw_only=True):
    device_id: str
    heartbeat: Heartbeat


class TelemetryReceived(Fact, frozen=True, kw_only=True):
    device_id: str
    ts: float
    source: str
    connection: str | None
    readings: int
    data: dict[str, Any]


class AlertChanged(Fact, frozen=True, kw_only=True):
    """AlertCreated, AlertUpdated (a repeat) and AlertResolved share this shape."""

    device_id: str
    alert: dict[str, Any]


class CommandUpdated(Fact, frozen=True, kw_only=True):
    device_id: str
    request_id: str
    command: str
    status: str
    progress: float | None = None
    response: Any = None
    error: str | None = None


class ConfigReported(Fact, frozen=True, kw_only=True):
    device_id: str
    config: dict[str, Any]  # secrets masked


class FirmwareRolloutUpdated(Fact, frozen=True, kw_only=True):
    rollout_id: str
    version: str
    state: str
    counts: dict[str, int]
    device_id: str | None = None
    device_state: str | None = None


class FirmwareDownloadRecorded(Fact, frozen=True, kw_only=True):
    device_id: str
    version: str
    range_start: int
    range_end: int
    size_bytes: int


class NotificationRulePaused(Fact, frozen=True, kw_only=True):
    """A notification rule whose endpoint kept failing was paused (services/notify)."""

    rule_id: str
    name: str
    reason: str
    consecutive_failures: int
