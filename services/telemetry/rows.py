"""Telemetry bundles from the bus -> rows for COPY (the hot path).

Bundles are decoded with a view of `TelemetryBundle` whose reading data stays raw JSON: it is
staged as text exactly as ingest encoded it and parsed once, by PostgreSQL. A record that can
not be stored (bad device id, a NUL character that jsonb refuses, a time out of range, older
than the retention) is dropped and counted; the others of its message are stored.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import msgspec

from libs.common.errors import InvalidInput
from services.telemetry.partitions import Month
from services.telemetry.repo import StagedRow

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SOURCES = frozenset({"live", "sd"})
MAX_CONNECTION_CHARS = 8
# Times a reading can have (ingest already normalizes; this guards the table's bounds).
EARLIEST_TS = 946684800.0  # 2000-01-01
LATEST_TS = 253402300799.0  # 9999-12-31


class RawReading(msgspec.Struct, frozen=True, array_like=True):
    ts: float
    clock_unsynced: bool
    data: msgspec.Raw


class RawMessage(msgspec.Struct, frozen=True, array_like=True):
    device_id: str
    received_at: float
    source: str
    connection: str | None
    readings: list[RawReading]
    dropped: int = 0


class RawBundle(msgspec.Struct, frozen=True):
    """The decode view of libs.common.messages.device.TelemetryBundle."""

    messages: list[RawMessage]


_bundle_decoder = msgspec.json.Decoder(RawBundle)


def decode_bundle(data: bytes) -> RawBundle:
    try:
        return _bundle_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"undecodable telemetry bundle: {exc}") from None


@dataclass
class LatestOfDevice:
    """The newest reading of one device in a batch (for its TelemetryReceived fact)."""

    ts: float
    source: str
    connection: str | None
    data: msgspec.Raw


@dataclass
class Batch:
    rows: list[StagedRow] = field(default_factory=list)
    messages: int = 0
    months: set[Month] = field(default_factory=set)
    dropped: Counter[str] = field(default_factory=Counter)
    latest: dict[str, LatestOfDevice] = field(default_factory=dict)

    def add(self, bundle: RawBundle, cutoff_ts: float) -> None:
        for message in bundle.messages:
            self.add_message(message, cutoff_ts)

    def add_message(self, message: RawMessage, cutoff_ts: float) -> None:
        self.messages += 1
        if message.dropped:
            self.dropped["malformed"] += message.dropped
        reason = _message_problem(message)
        if reason:
            self.dropped[reason] += len(message.readings)
            return
        received = datetime.fromtimestamp(message.received_at, UTC)
        device = message.device_id
        for reading in message.readings:
            raw = bytes(reading.data)
            reason = _reading_problem(reading.ts, raw, cutoff_ts)
            if reason:
                self.dropped[reason] += 1
                continue
            ts = datetime.fromtimestamp(reading.ts, UTC)
            self.rows.append((device, ts, raw.decode(), message.source,
                              message.connection, received, reading.clock_unsynced))
            self.months.add((ts.year, ts.month))
            newest = self.latest.get(device)
            if newest is None or reading.ts > newest.ts:
                self.latest[device] = LatestOfDevice(reading.ts, message.source,
                                                     message.connection, reading.data)


def _message_problem(message: RawMessage) -> str | None:
    if not DEVICE_ID.match(message.device_id):
        return "bad_device_id"
    if message.source not in SOURCES:
        return "bad_source"
    if message.connection is not None and len(message.connection) > MAX_CONNECTION_CHARS:
        return "bad_connection"
    if not math.isfinite(message.received_at) or not (
            EARLIEST_TS <= message.received_at <= LATEST_TS):
        return "bad_received_at"
    return None


def _reading_problem(ts: float, raw: bytes, cutoff_ts: float) -> str | None:
    if not math.isfinite(ts) or not EARLIEST_TS <= ts <= LATEST_TS:
        return "bad_ts"
    if ts < cutoff_ts:
        return "expired"
    if not raw.startswith(b"{"):
        return "bad_data"
    if b"\\u0000" in raw:  # jsonb refuses NUL in text
        return "bad_data"
    return None
