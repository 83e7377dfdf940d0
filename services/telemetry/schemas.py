"""Request and response types of the telemetry service's RPC (`{root}.rpc.telemetry.*`).

Times in answers are ISO 8601 UTC; `from`/`to`/`after_ts` take ISO 8601 or epoch seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

# A time as a client sends it: ISO 8601 text or epoch seconds.
TimeInput = str | float | int | None


class DeviceQuery(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str


class Latest(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    ts: datetime
    received_at: datetime
    source: str
    connection: str | None
    clock_unsynced: bool
    data: dict[str, Any]


class HistoryQuery(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    from_: TimeInput = msgspec.field(default=None, name="from")
    to: TimeInput = None
    interval: str | None = None
    fields: list[str] | None = None
    order: Literal["asc", "desc"] = "desc"
    # Raw readings: lists' default of 50; buckets: all of them up to the maximum (None).
    limit: int | None = None
    offset: int = 0


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    ts: datetime
    received_at: datetime
    source: str
    connection: str | None
    clock_unsynced: bool
    data: msgspec.Raw  # the reading's JSON object as stored, embedded without decoding


class FieldStats(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    count: int
    min: float
    avg: float
    max: float
    increase: float | None = None  # counters only (energy registers): max - min in the bucket


class Bucket(msgspec.Struct, frozen=True, kw_only=True):
    ts: datetime  # start of the bucket
    count: int  # readings in the bucket
    fields: dict[str, FieldStats]


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """The list shape of the console plus the range served. `limit` is the one applied: it is
    lowered when the page would not fit in one bus message, so `offset + limit` is the next
    page either way."""

    items: list[Reading] | list[Bucket]
    total: int
    limit: int
    offset: int
    from_: datetime = msgspec.field(name="from")
    to: datetime
    interval: str | None = None


class ExportRange(msgspec.Struct, frozen=True, kw_only=True):
    """What an export plan and an export page both ask: a device's range, from a cursor."""

    device_id: str
    from_: TimeInput = msgspec.field(default=None, name="from")
    to: TimeInput = None
    fields: list[str] | None = None
    after_ts: str | None = None  # the `next_after_ts` of the previous page (or plan)


class ExportPageQuery(ExportRange, frozen=True, kw_only=True):
    until_ts: str | None = None  # the last reading of the page's chunk (ExportPlan.ends)
    limit: int = 2000


class ExportPage(msgspec.Struct, frozen=True, kw_only=True):
    """CSV rows in `csv` for the columns `fields` (`header` is the CSV header line of those
    columns); `next_after_ts` is None at the end of the range."""

    fields: list[str]
    header: str
    csv: str
    rows: int
    next_after_ts: str | None


class ExportPlanQuery(ExportRange, frozen=True, kw_only=True):
    chunk_rows: int = 500


class ExportPlan(msgspec.Struct, frozen=True, kw_only=True):
    """An export cut into chunks of `chunk_rows` readings, so that several pages can be asked
    for at once: chunk i holds the readings after `ends[i - 1]` (after the plan's start for the
    first) up to and including `ends[i]`. After the last end come the rest of the range (fewer
    than `chunk_rows` readings), unless `next_after_ts` is set: the plan stopped there and goes
    on when asked again with it."""

    fields: list[str]
    header: str
    ends: list[str]
    next_after_ts: str | None


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    messages_per_minute: float
    readings_per_minute: float
