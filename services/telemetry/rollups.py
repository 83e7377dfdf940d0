"""Hourly and daily buckets from cached hourly rollups.

Aggregating 30 days of 50-register readings from JSONB takes seconds; the statistics of a
complete hour never change unless rows are added to it. So a 1h/1d query takes each whole hour
of its range from `hourly_rollups` when the cached row count still equals the hour's row
count (an index-only count), computes the others from the readings (saving the complete
ones), and computes the partial hours at the edges of the range from the readings.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from datetime import UTC, datetime, timedelta

from services.telemetry.queries import is_counter
from services.telemetry.repo import HourRollup, Repo, StatRow
from services.telemetry.schemas import Bucket, FieldStats
from services.telemetry.wide_sql import MAX_WIDE_FIELDS

HOUR = timedelta(hours=1)
# Buckets built per round while a page fills (a page stops at its answer's byte budget).
CHUNK_BUCKETS = 96
# Hours computed per query of the readings (then saved), so that progress survives a timeout;
# spans computed at once (on a 2-core machine PostgreSQL uses both).
SPAN_HOURS = 96
PARALLEL_SPANS = 2
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
    if width == HOUR:  # nothing to merge
        readings, merged = counts, {hour: hours.get(hour, {}) for hour in counts}
    else:
        for hour, count in counts.items():
            start = hour.replace(hour=0)
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


async def computed(repo: Repo, device_id: str, hours: list[datetime],
                   counts: dict[datetime, int], now: datetime) -> dict[datetime, HourStats]:
    """Statistics of whole `hours` from the readings: spans of up to SPAN_HOURS, PARALLEL_SPANS
    at a time, each one statement over the fields of the device's latest reading (hours with
    other fields too: the generic jsonb_each statement); complete hours are saved span by span,
    so a long cold query keeps its progress."""
    keys = await repo.latest_keys(device_id)
    if len(keys) > MAX_WIDE_FIELDS:  # too wide for one statement: the generic way
        keys = []
    slots = asyncio.Semaphore(PARALLEL_SPANS)
    out: dict[datetime, HourStats] = {}

    async def one(span: list[datetime]) -> None:
        async with slots:
            fresh, generic = ((await repo.hourly_wide(device_id, span[0], span[-1] + HOUR, keys))
                              if keys else ({}, set(span)))
            for run in spans(sorted(generic)):
                fresh.update(by_hour(await repo.field_stats(device_id, run[0], run[-1] + HOUR,
                                                            HOUR, None)))
            complete = [(h, counts[h], fresh.get(h, {})) for h in span if h + HOUR <= now]
            if complete:
                await repo.save_rollups(device_id, complete)
            out.update({h: fresh.get(h, {}) for h in span})

    async with asyncio.TaskGroup() as group:
        for span in spans(hours):
            group.create_task(one(span))
    return out


async def hourly(repo: Repo, device_id: str, start: datetime, end: datetime, now: datetime,
                 counts: dict[datetime, int]) -> dict[datetime, HourStats]:
    """Statistics per hour of [start, end), partial hours at the edges included; `counts` are
    the row counts of its hours."""
    if not counts:
        return {}
    whole_from, whole_to = ceil_hour(start), floor_hour(end)
    stats: dict[datetime, HourStats] = {}
    if whole_from < whole_to:
        cached = await repo.rollups(device_id, whole_from, whole_to)
        stale = sorted(h for h, n in counts.items()
                       if whole_from <= h < whole_to and cached.get(h, (-1, {}))[0] != n)
        stats = {h: s for h, (n, s) in cached.items() if counts.get(h) == n}
        if stale:
            stats.update(await computed(repo, device_id, stale, counts, now))
    edges = ([(start, whole_from), (whole_to, end)] if whole_from < whole_to
             else [(start, end)])
    for edge_from, edge_to in edges:
        if edge_from < edge_to:
            stats.update(by_hour(await repo.field_stats(device_id, edge_from, edge_to, HOUR,
                                                        None)))
    return stats


def bucket_start(hour: datetime, width: timedelta) -> datetime:
    return hour if width == HOUR else hour.replace(hour=0)


async def bucket_count(repo: Repo, device_id: str, start: datetime, end: datetime,
                       width: timedelta) -> tuple[dict[datetime, int], list[datetime]]:
    """Row counts per hour of [start, end) and the starts of its non-empty buckets."""
    counts = await repo.bucket_counts(device_id, start, end, HOUR)
    return counts, sorted({bucket_start(h, width) for h in counts})


async def built(repo: Repo, device_id: str, start: datetime, end: datetime, width: timedelta,
                fields: list[str] | None, counts: dict[datetime, int],
                starts: list[datetime]) -> AsyncGenerator[Bucket, None]:
    """The buckets starting at `starts` (in that order), built CHUNK_BUCKETS at a time so that
    a page stops the work where it is full."""
    now = datetime.now(UTC)
    for index in range(0, len(starts), CHUNK_BUCKETS):
        chunk = starts[index:index + CHUNK_BUCKETS]
        chunk_from, chunk_to = max(start, min(chunk)), min(end, max(chunk) + width)
        within = {h: n for h, n in counts.items() if chunk_from <= h < chunk_to
                  or h < chunk_from < h + HOUR}
        hours = await hourly(repo, device_id, chunk_from, chunk_to, now, within)
        by_start = {b.ts: b for b in to_buckets(hours, within, width, fields)}
        for bucket_ts in chunk:
            yield by_start[bucket_ts]


async def roll_up_all(repo: Repo, start: datetime, end: datetime) -> int:
    """Rollups of the complete hours in [start, end) of every device with readings there (the
    hourly job), in one pass over the fields of the devices' latest readings; hours with other
    fields are computed the generic way. Answers the rollups saved."""
    devices, keys = await repo.recent_devices(start)
    if not devices:
        return 0
    if not keys or len(keys) > MAX_WIDE_FIELDS:
        return await repo.roll_up_all(start, end)
    rows = await repo.all_hourly_wide(start, end, devices, keys)
    done = [r for r in rows if not r.extra]
    for odd in (r for r in rows if r.extra):
        stats = by_hour(await repo.field_stats(odd.device_id, odd.hour, odd.hour + HOUR, HOUR,
                                               None)).get(odd.hour, {})
        done.append(HourRollup(device_id=odd.device_id, hour=odd.hour, readings=odd.readings,
                               extra=False, stats=stats))
    if done:
        await repo.save_all_rollups(done)
    return len(done)
