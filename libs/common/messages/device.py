"""What crosses the bus between ingest and the services: device input and device output.

Ingest validates the envelope (types of known fields, sizes) and normalizes timestamps; the
owning service applies the domain rules. `received_at` is the console's receive time (epoch s).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SCHEMA_VERSION = 1

ReadingValue = float | int | str | bool | None


class DeviceRegistration(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    received_at: float
    mac_address: str | None = None
    imei: str | None = None
    iccid: str | None = None
    hardware: str | None = None
    firmware_version: str | None = None
    capabilities: list[str] | None = None
    heartbeat_interval: int = 60
    meter: dict[str, Any] | None = None


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    received_at: float
    ts: float
    clock_unsynced: bool = False
    uptime_s: float | None = None
    firmware_version: str | None = None
    connection_type: str | None = None
    signal_strength: int | None = None
    ip_address: str | None = None
    boot_count: int | None = None
    free_heap: int | None = None
    min_free_heap: int | None = None
    reset_reason: str | None = None
    modbus_ok: bool | None = None
    modbus_errors: int | None = None
    sd_buffered: int | None = None
    heartbeat_interval: int | None = None


class StatusReport(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    received_at: float
    status: Literal["online", "offline"]
    connection_type: str | None = None
    ts: float | None = None


class DeviceAlert(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    received_at: float
    ts: float
    clock_unsynced: bool = False
    alert_type: str
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    metadata: dict[str, Any] | None = None
    state: Literal["active", "resolved"] = "active"


class CommandAnswer(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    received_at: float
    request_id: str
    status: Literal["ack", "progress", "success", "error"]
    progress: float | None = None
    data: Any = None
    error: str | None = None


class TelemetryReading(msgspec.Struct, frozen=True, array_like=True):
    """One reading: (ts, clock_unsynced, data). Array-like to keep bundles small on the bus."""

    ts: float
    clock_unsynced: bool
    data: dict[str, ReadingValue]


class TelemetryMessage(msgspec.Struct, frozen=True, array_like=True):
    """One MQTT telemetry message (live: one reading; SD replay: many)."""

    device_id: str
    received_at: float
    source: str
    connection: str | None
    readings: list[TelemetryReading]
    dropped: int = 0  # records of a replay that ingest refused (malformed)


class TelemetryBundle(msgspec.Struct, frozen=True):
    """Several telemetry messages published together (one JetStream publish, one ack)."""

    messages: list[TelemetryMessage]


class DeviceCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A command for `{prefix}/{device_id}/cmd`; ingest sends `{request_id, command, params}`."""

    device_id: str
    request_id: str
    command: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
