"""Pure rules of the history and export queries: ranges, intervals, buckets, CSV cells."""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.common.errors import BadRequest
from services.telemetry.repo import StatRow
from services.telemetry.schemas import Bucket, FieldStats, TimeInput

# Buckets a client may ask for, as PostgreSQL intervals (aligned on UTC midnight).
INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1), "1d": timedelta(days=1),
}
# Raw history without from/to: the last day.
DEFAULT_RAW_RANGE = timedelta(days=1)
# Longest ranges: raw pages are cheap at any range; buckets are computed whole, so at most
# this many per query (1h buckets: 41 days; 1d: 2.7 years).
MAX_RAW_RANGE = timedelta(days=3660)
MAX_BUCKETS = 1000
MAX_EXPORT_RANGE = timedelta(days=3660)
# Registers that only grow (energy counters): their buckets also carry the increase.
COUNTER_PREFIXES = ("ep_", "eq_", "es_", "kwh", "kvarh", "kvah", "energy")
COUNTER_NAMES = frozenset({"ep", "eq", "es", "wh", "varh"})
# A spreadsheet runs cells starting with these as formulas (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
FIELD_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_FIELDS = 100
# Columns of an export page: the plan's, which may be keys found in the readings (any names a
# device used, up to its 512 registers and more across readings). repo.EXPORT_KEYS keeps this.
MAX_EXPORT_COLUMNS = 1024
MAX_COLUMN_CHARS = 256


def parse_time(value: TimeInput, name: str) -> datetime | None:
    """ISO 8601 (naive = UTC) or epoch seconds; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be ISO 8601 or epoch seconds")
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), UTC)
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{name} must be ISO 8601 or epoch seconds, not {value!r}") from None


def time_range(start: TimeInput, end: TimeInput, now: datetime, *,
               default: timedelta | None, longest: timedelta) -> tuple[datetime, datetime]:
    """[from, to) of a query; `default` fills a missing bound (None: both are required)."""
    first, last = parse_time(start, "from"), parse_time(end, "to")
    if default is None and (first is None or last is None):
        raise BadRequest("from and to are both required")
    last = last or (now if first is None else min(now, first + (default or longest)))
    first = first or last - (default or longest)
    if last < first:
        raise BadRequest(f"reversed range: from {first.isoformat()} is after to "
                         f"{last.isoformat()}")
    if last - first > longest:
        raise BadRequest(f"range longer than {_duration(longest)}"
                         + (" for this interval" if default is not None else ""))
    return first, last


def _duration(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} hours"


def bucket_width(interval: str) -> timedelta:
    if interval not in INTERVALS:
        raise BadRequest(f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}")
    return INTERVALS[interval]


def checked_fields(fields: Sequence[str] | None) -> list[str] | None:
    if not fields:
        return None
    if len(fields) > MAX_FIELDS:
        raise BadRequest(f"at most {MAX_FIELDS} fields")
    for name in fields:
        if not FIELD_NAME.match(name):
            raise BadRequest(f"bad field name {name!r}")
    return list(dict.fromkeys(fields))


def checked_columns(fields: Sequence[str]) -> list[str]:
    """The columns of an export page, as its plan gave them: bounded, not held to FIELD_NAME
    (a device's register names are stored as they came; they only travel as parameters)."""
    if len(fields) > MAX_EXPORT_COLUMNS:
        raise BadRequest(f"at most {MAX_EXPORT_COLUMNS} columns")
    for name in fields:
        if not 1 <= len(name) <= MAX_COLUMN_CHARS or "\x00" in name:
            raise BadRequest(f"bad column name {name[:80]!r}")
    return list(dict.fromkeys(fields))


@functools.lru_cache(maxsize=4096)  # called per field and bucket with the same few names
def is_counter(field: str) -> bool:
    name = field.lower()
    return name in COUNTER_NAMES or name.startswith(COUNTER_PREFIXES)


def buckets(counts: dict[datetime, int], stats: Iterable[StatRow]) -> list[Bucket]:
    """Buckets in time order from per-bucket reading counts and per-field statistics."""
    fields: dict[datetime, dict[str, FieldStats]] = {b: {} for b in counts}
    for row in stats:
        increase = row.max - row.min if is_counter(row.field) else None
        fields.setdefault(row.bucket, {})[row.field] = FieldStats(
            count=row.n, min=row.min, avg=row.avg, max=row.max, increase=increase)
    return [Bucket(ts=b, count=counts.get(b, 0), fields=dict(sorted(fields[b].items())))
            for b in sorted(fields)]


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def csv_cell(value: Any) -> str:
    """A CSV cell as text: None empty, numbers as they are, formulas neutralised."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


CSV_FIXED_COLUMNS = ("timestamp", "source", "connection", "clock_unsynced")


def csv_header(fields: Sequence[str]) -> str:
    return csv_rows([[*CSV_FIXED_COLUMNS, *(csv_cell(f) for f in fields)]])


def csv_rows(rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerows(rows)
    return out.getvalue()
