"""Hourly and daily buckets from cached hourly rollups.

Aggregating 30 days of 50-register readings from JSONB takes seconds; the statistics of a
complete hour never change unless rows are added to it. So a 1h/1d query takes each whole hour
of its range from `hourly_rollups` when the cached row count still equals the hour's row
count (an index-only count), computes the others from the readings (saving the complete
ones), and computes the partial hours at the edges of the range from the readings.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from services.telemetry.queries import is_counter
from services.telemetry.repo import Repo, StatRow
from services.telemetry.schemas import Bucket, FieldStats

HOUR = timedelta(hours=1)
# Hours computed per query of the readings (then saved), so that progress survives a timeout.
SPAN_HOURS = 48
# [count, min, max, sum] of one field in one hour (what is mergeable).
Agg = list[float]
HourStats = dict[str, Agg]


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def ceil_hour(ts: datetime) -> datetime:
    floored = floor_hour(ts)
    return floored if floored == ts else floored + HOUR


def by_hour(rows: Iterable[StatRow]) -> dict[datetime, HourStats]:
    out: dict[datetime, HourStats] = {}
    for row in rows:
        out.setdefault(row.bucket, {})[row.field] = [row.n, row.min, row.max, row.avg * row.n]
    return out


def merge_into(target: HourStats, source: HourStats) -> None:
    for name, (n, low, high, total) in source.items():
        have = target.get(name)
        if have is None:
            target[name] = [n, low, high, total]
        else:
            target[name] = [have[0] + n, min(have[1], low), max(have[2], high), have[3] + total]


def to_buckets(hours: dict[datetime, HourStats], counts: dict[datetime, int],
               width: timedelta, fields: list[str] | None) -> list[Bucket]:
    """Merge hours into buckets of `width` (1h or 1d, aligned on UTC midnight)."""
    merged: dict[datetime, HourStats] = {}
    readings: dict[datetime, int] = {}
    for hour, count in counts.items():
        start = hour if width == HOUR else hour.replace(hour=0)
        readings[start] = readings.get(start, 0) + count
        merge_into(merged.setdefault(start, {}), hours.get(hour, {}))
    wanted = set(fields) if fields is not None else None
    return [Bucket(ts=start, count=readings[start], fields={
        name: FieldStats(count=int(n), min=low, avg=total / n, max=high,
                         increase=high - low if is_counter(name) else None)
        for name, (n, low, high, total) in sorted(merged[start].items())
        if wanted is None or name in wanted})
        for start in sorted(merged)]


def spans(hours: list[datetime]) -> list[list[datetime]]:
    """Sorted hours cut into runs of at most SPAN_HOURS consecutive-ish hours."""
    out: list[list[datetime]] = []
    for hour in hours:
        if out and hour - out[-1][0] < SPAN_HOURS * HOUR:
            out[-1].append(hour)
        else:
            out.append([hour])
    return out


async def hourly(repo: Repo, device_id: str, start: datetime, end: datetime,
                 now: datetime) -> tuple[dict[datetime, HourStats], dict[datetime, int]]:
    """Statistics and row counts per hour of [start, end), partial hours at the edges included."""
    counts = await repo.bucket_counts(device_id, start, end, HOUR)
    if not counts:
        return {}, {}
    whole_from, whole_to = ceil_hour(start), floor_hour(end)
    stats: dict[datetime, HourStats] = {}
    if whole_from < whole_to:
        cached = await repo.rollups(device_id, whole_from, whole_to)
        stale = sorted(h for h, n in counts.items()
                       if whole_from <= h < whole_to and cached.get(h, (-1, {}))[0] != n)
        stats = {h: s for h, (n, s) in cached.items() if counts.get(h) == n}
        for span in spans(stale):
            fresh = by_hour(await repo.field_stats(device_id, span[0], span[-1] + HOUR, HOUR,
                                                   None))
            complete = [(h, counts[h], fresh.get(h, {})) for h in span if h + HOUR <= now]
            if complete:  # saved span by span: a long cold query keeps its progress
                await repo.save_rollups(device_id, complete)
            stats.update({h: fresh.get(h, {}) for h in span})
    edges = ([(start, whole_from), (whole_to, end)] if whole_from < whole_to
             else [(start, end)])
    for edge_from, edge_to in edges:
        if edge_from < edge_to:
            stats.update(by_hour(await repo.field_stats(device_id, edge_from, edge_to, HOUR,
                                                        None)))
    return stats, counts


async def buckets(repo: Repo, device_id: str, start: datetime, end: datetime,
                  width: timedelta, fields: list[str] | None) -> list[Bucket]:
    hours, counts = await hourly(repo, device_id, start, end, datetime.now(UTC))
    return to_buckets(hours, counts, width, fields)
