"""Envelope validation: what a device sent, checked and normalized into a bus message.

Known fields must have the contract's types; unknown fields are ignored (newer firmware may add
some). Timestamps are normalized (devicetime); the topic's device id is authoritative and a
payload naming another device is refused, so nothing is ever attributed across devices.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from libs.common.devicetime import normalize_ts
from libs.common.messages.device import (
    CommandAnswer,
    DeviceAlert,
    DeviceRegistration,
    Heartbeat,
    ReadingValue,
    StatusReport,
    TelemetryMessage,
    TelemetryReading,
)
from services.ingest.topics import DEVICE_ID

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_READINGS_PER_MESSAGE = 10_000
MAX_REGISTERS_PER_READING = 512


class Rejected(ValueError):
    """A message the console drops; `reason` labels the metric."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Loose(msgspec.Struct, forbid_unknown_fields=False):
    """Base of the wire shapes: unknown fields are ignored."""


class _Registration(_Loose, kw_only=True):
    device_id: str
    mac_address: str | None = None
    imei: str | None = None
    iccid: str | None = None
    hardware: str | None = None
    firmware_version: str | None = None
    capabilities: list[str] | None = None
    heartbeat_interval: int | None = None
    meter: dict[str, Any] | None = None


class _Heartbeat(_Loose, kw_only=True):
    ts: Any = None
    device_id: str | None = None
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


class _Status(_Loose, kw_only=True):
    status: Literal["online", "offline"]
    connection_type: str | None = None
    ts: Any = None
    device_id: str | None = None


class _Alert(_Loose, kw_only=True):
    alert_type: str
    ts: Any = None
    device_id: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    message: str = ""
    value: float | None = None
    threshold: float | None = None
    metadata: dict[str, Any] | None = None
    state: Literal["active", "resolved"] = "active"


class _Answer(_Loose, kw_only=True):
    request_id: str
    status: Literal["ack", "progress", "success", "error"]
    device_id: str | None = None
    progress: float | None = None
    data: Any = None
    error: str | None = None


class _Record(_Loose, kw_only=True):
    ts: Any = None
    data: dict[str, ReadingValue]


class _Telemetry(_Loose, kw_only=True):
    ts: Any = None
    device_id: str | None = None
    source: str = "live"
    connection: str | None = None
    data: dict[str, ReadingValue] | None = None
    records: list[Any] | None = None


class _TypedTelemetry(_Telemetry, kw_only=True):
    """The same shape with typed records: a replay whose records are all well-formed (nearly
    every one) is validated in one C-level pass instead of record by record."""

    records: list[_Record] | None = None


_decoders = {t: msgspec.json.Decoder(t) for t in
             (_Registration, _Heartbeat, _Status, _Alert, _Answer, _Telemetry)}
_typed_telemetry = msgspec.json.Decoder(_TypedTelemetry)


def _decode(payload: bytes, shape: type[Any]) -> Any:
    try:
        return _decoders[shape].decode(payload)
    except msgspec.ValidationError as exc:
        raise Rejected("bad_field", str(exc)) from None
    except msgspec.DecodeError:
        raise Rejected("not_json") from None


def _same_device(topic_id: str, payload_id: str | None) -> None:
    if payload_id is not None and payload_id != topic_id:
        raise Rejected("device_mismatch", f"payload names {payload_id!r}")


def _interval(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 86_400:
        raise Rejected("bad_field", "heartbeat_interval out of 1..86400")
    return value


def registration(payload: bytes, received_at: float) -> DeviceRegistration:
    wire: _Registration = _decode(payload, _Registration)
    if not DEVICE_ID.match(wire.device_id):
        raise Rejected("bad_device_id")
    return DeviceRegistration(
        device_id=wire.device_id, received_at=received_at, mac_address=wire.mac_address,
        imei=wire.imei, iccid=wire.iccid, hardware=wire.hardware,
        firmware_version=wire.firmware_version, capabilities=wire.capabilities,
        heartbeat_interval=_interval(wire.heartbeat_interval) or 60, meter=wire.meter,
    )


def heartbeat(device_id: str, payload: bytes, received_at: float) -> Heartbeat:
    wire: _Heartbeat = _decode(payload, _Heartbeat)
    _same_device(device_id, wire.device_id)
    ts, unsynced = normalize_ts(wire.ts, received_at)
    fields = msgspec.structs.asdict(wire)
    fields.pop("ts")
    fields.pop("device_id")
    fields["heartbeat_interval"] = _interval(wire.heartbeat_interval)
    return Heartbeat(device_id=device_id, received_at=received_at, ts=ts,
                     clock_unsynced=unsynced, **fields)


def status(device_id: str, payload: bytes, received_at: float) -> StatusReport:
    text = payload.strip()
    if text in (b"online", b"offline"):
        return StatusReport(device_id=device_id, received_at=received_at,
                            status="online" if text == b"online" else "offline")
    wire: _Status = _decode(payload, _Status)
    _same_device(device_id, wire.device_id)
    ts = normalize_ts(wire.ts, received_at)[0] if wire.ts is not None else None
    return StatusReport(device_id=device_id, received_at=received_at, status=wire.status,
                        connection_type=wire.connection_type, ts=ts)


def alert(device_id: str, payload: bytes, received_at: float) -> DeviceAlert:
    wire: _Alert = _decode(payload, _Alert)
    _same_device(device_id, wire.device_id)
    if not 1 <= len(wire.alert_type) <= 32:
        raise Rejected("bad_field", "alert_type must be 1-32 characters")
    ts, unsynced = normalize_ts(wire.ts, received_at)
    return DeviceAlert(
        device_id=device_id, received_at=received_at, ts=ts, clock_unsynced=unsynced,
        alert_type=wire.alert_type, severity=wire.severity, message=wire.message[:2000],
        value=wire.value, threshold=wire.threshold, metadata=wire.metadata, state=wire.state,
    )


def answer(device_id: str, payload: bytes, received_at: float) -> CommandAnswer:
    wire: _Answer = _decode(payload, _Answer)
    _same_device(device_id, wire.device_id)
    if not 1 <= len(wire.request_id) <= 64:
        raise Rejected("bad_field", "request_id must be 1-64 characters")
    return CommandAnswer(device_id=device_id, received_at=received_at,
                         request_id=wire.request_id, status=wire.status,
                         progress=wire.progress, data=wire.data, error=wire.error)


def _decode_telemetry(payload: bytes) -> _Telemetry:
    """Typed first; on any failure the loose shape, whose records are then checked one by one
    (so a bad record drops only itself) and whose other errors are reported as usual."""
    try:
        return _typed_telemetry.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _decode(payload, _Telemetry)  # type: ignore[no-any-return]


def _records(wire: _Telemetry, received_at: float) -> tuple[list[TelemetryReading], int]:
    """The readings of a replay and how many of its records were dropped as malformed."""
    assert wire.records is not None
    if len(wire.records) > MAX_READINGS_PER_MESSAGE:
        raise Rejected("too_many_records")
    typed = isinstance(wire, _TypedTelemetry)
    readings: list[TelemetryReading] = []
    dropped = 0
    for raw in wire.records:
        if typed:
            record: _Record = raw
        else:
            try:
                record = msgspec.convert(raw, _Record)
            except msgspec.ValidationError:
                dropped += 1
                continue
        if len(record.data) > MAX_REGISTERS_PER_READING:
            dropped += 1
            continue
        ts, unsynced = normalize_ts(record.ts, received_at)
        readings.append(TelemetryReading(ts, unsynced, record.data))
    if not readings and dropped == 0:
        raise Rejected("empty_telemetry")
    return readings, dropped


def telemetry(device_id: str, payload: bytes, received_at: float) -> TelemetryMessage:
    """One live reading or an SD replay; malformed records of a replay are counted and dropped."""
    wire = _decode_telemetry(payload)
    _same_device(device_id, wire.device_id)
    source = wire.source if wire.source in ("live", "sd") else "live"
    connection = wire.connection[:8] if wire.connection else None
    readings: list[TelemetryReading] = []
    dropped = 0
    if wire.records is not None:
        readings, dropped = _records(wire, received_at)
    elif wire.data is not None:
        if len(wire.data) > MAX_REGISTERS_PER_READING:
            raise Rejected("too_many_registers")
        ts, unsynced = normalize_ts(wire.ts, received_at)
        readings.append(TelemetryReading(ts, unsynced, wire.data))
    else:
        raise Rejected("empty_telemetry", "neither data nor records")
    return TelemetryMessage(device_id, received_at, source, connection, readings, dropped)
