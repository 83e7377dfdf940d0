"""The telemetry domain: store readings once, answer latest / history / export / rates.

- A reading is stored once per (device_id, timestamp), whatever its route (live, SD replay,
  QoS 1 redelivery, a replica restarting); unsynced readings carry the receive time.
- Readings older than the retention are not stored (their month is or will be dropped).
- A deleted device (DeviceDeleted) loses its telemetry: its rows are deleted across partitions
  and its latest reading is forgotten. That is a rare operator action on purpose ("remove the
  device from the console"); a device that keeps sending starts a new history.
- Export columns: the fields asked for, else the union of the keys of the first
  EXPORT_PAGE_ROWS readings; a key first seen later in the range is not exported unless asked
  for with `fields`. PostgreSQL writes the CSV lines (repo.export_csv_sql); pages are cut to
  ANSWER_BUDGET_BYTES. An export plan cuts the range into chunks of readings that the gateway
  asks for several at a time (writing CSV is CPU-bound: as many PostgreSQL backends).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from libs.common.errors import BadRequest, NotFound
from libs.common.paging import DEFAULT_LIMIT, MAX_LIMIT
from services.telemetry import queries, rollups
from services.telemetry.partitions import Partitions, months_ahead
from services.telemetry.repo import Repo
from services.telemetry.rows import Batch
from services.telemetry.schemas import (
    Bucket,
    ExportPage,
    ExportPageQuery,
    ExportPlan,
    ExportPlanQuery,
    ExportRange,
    HistoryPage,
    HistoryQuery,
    Latest,
    Reading,
    Stats,
)

# One bus answer stays well under NATS's 1 MB (ARCHITECTURE: never over ~512 KiB).
ANSWER_BUDGET_BYTES = 400 * 1024
# Bytes of an answer per reading besides its data, and per bucket field (rough, for budgets).
READING_OVERHEAD_BYTES = 160
BUCKET_FIELD_BYTES = 110
EXPORT_PAGE_ROWS = 2000
MAX_EXPORT_PAGE_ROWS = 5000
# Chunks of one export plan (at 500 readings a chunk, a plan covers a million readings).
MAX_PLAN_CHUNKS = 2000
RATE_WINDOW_MIN = 15


@dataclass(frozen=True)
class StoreOutcome:
    stored: dict[str, int]  # new rows per device
    rows: int  # rows offered (stored + duplicates)
    dropped: Counter[str]

    @property
    def duplicates(self) -> int:
        return self.rows - sum(self.stored.values())


class TelemetryService:
    def __init__(self, repo: Repo, partitions: Partitions, retention_days: int) -> None:
        self.repo = repo
        self.partitions = partitions
        self.retention_days = retention_days
        self._rolled_up_hour: datetime | None = None

    # -- writing ---------------------------------------------------------------------------------
    def retention_cutoff_ts(self) -> float:
        return time.time() - self.retention_days * 86400.0

    async def store(self, batch: Batch) -> StoreOutcome:
        if batch.rows:
            await self.partitions.ensure(batch.months)
            stored = await self.repo.store(batch.rows, batch.messages)
        else:
            stored = {}
        return StoreOutcome(stored=stored, rows=len(batch.rows), dropped=batch.dropped)

    async def maintain(self, now: datetime | None = None) -> list[str]:
        """Daily: months ahead exist, expired months are dropped, old rates/rollups pruned."""
        now = now or datetime.now(UTC)
        await self.partitions.ensure(months_ahead(now))
        dropped = await self.partitions.drop_expired(now, self.retention_days)
        await self.repo.prune_minutes()
        await self.repo.prune_rollups(now - timedelta(days=self.retention_days))
        return dropped

    async def roll_up_last_hour(self) -> None:
        """Hourly statistics of the hour that just ended, for every device (history's cache);
        each replica does it once per hour (a second run only rewrites the same rows)."""
        hour = rollups.floor_hour(datetime.now(UTC)) - rollups.HOUR
        if self._rolled_up_hour == hour:
            return
        await rollups.roll_up_all(self.repo, hour, hour + rollups.HOUR)
        self._rolled_up_hour = hour

    async def forget_device(self, device_id: str) -> int:
        return await self.repo.delete_device(device_id)

    # -- reading ---------------------------------------------------------------------------------
    async def latest(self, device_id: str) -> Latest:
        row = await self.repo.latest(device_id)
        if row is None:
            raise NotFound(f"no telemetry for device {device_id!r}")
        return row

    async def history(self, q: HistoryQuery) -> HistoryPage:
        now = datetime.now(UTC)
        fields = queries.checked_fields(q.fields)
        if q.offset < 0:
            raise BadRequest("offset must not be negative")
        if q.interval is None:
            start, end = queries.time_range(q.from_, q.to, now, default=queries.DEFAULT_RAW_RANGE,
                                            longest=queries.MAX_RAW_RANGE)
            return await self._raw(q, fields, start, end)
        width = queries.bucket_width(q.interval)
        start, end = queries.time_range(q.from_, q.to, now, default=queries.DEFAULT_RAW_RANGE,
                                        longest=width * queries.MAX_BUCKETS)
        return await self._buckets(q, width, fields, start, end)

    async def _raw(self, q: HistoryQuery, fields: list[str] | None, start: datetime,
                   end: datetime) -> HistoryPage:
        limit = _checked_limit(q.limit, DEFAULT_LIMIT)
        rows = await self.repo.raw_page(q.device_id, start, end, descending=q.order == "desc",
                                        limit=limit, offset=q.offset, fields=fields,
                                        budget_bytes=ANSWER_BUDGET_BYTES,
                                        overhead_bytes=READING_OVERHEAD_BYTES)
        fetched = rows[0].fetched if rows else 0
        total = (q.offset + fetched if fetched < limit and (rows or q.offset == 0)
                 else await self.repo.count(q.device_id, start, end))
        if len(rows) < fetched:  # cut to the budget: the client's next offset is offset + limit
            limit = len(rows)
        items = [Reading(ts=row.ts, received_at=row.received_at, source=row.source,
                         connection=row.connection, clock_unsynced=row.clock_unsynced,
                         data=msgspec.Raw(row.data.encode())) for row in rows]
        return HistoryPage(items=items, total=total, limit=limit, offset=q.offset, from_=start,
                           to=end)

    async def _buckets(self, q: HistoryQuery, width: timedelta, fields: list[str] | None,
                       start: datetime, end: datetime) -> HistoryPage:
        limit = _checked_limit(q.limit, queries.MAX_BUCKETS)
        every: AsyncGenerator[Bucket, None]
        if width >= rollups.HOUR:  # built only as far as the page goes, from hourly rollups
            counts, starts = await rollups.bucket_count(self.repo, q.device_id, start, end,
                                                        width)
            total = len(starts)
            if q.order == "desc":
                starts.reverse()
            every = rollups.built(self.repo, q.device_id, start, end, width, fields, counts,
                                  starts[q.offset:q.offset + limit])
        else:
            counts = await self.repo.bucket_counts(q.device_id, start, end, width)
            stats = (await self.repo.field_stats(q.device_id, start, end, width, fields)
                     if counts else [])
            listed = queries.buckets(counts, stats)
            total = len(listed)
            if q.order == "desc":
                listed.reverse()
            every = _iterate(listed[q.offset:q.offset + limit])
        page: list[Bucket] = []
        used_bytes = 0
        async with contextlib.aclosing(every):
            async for bucket in every:
                used_bytes += 60 + BUCKET_FIELD_BYTES * len(bucket.fields)
                if page and used_bytes > ANSWER_BUDGET_BYTES:
                    limit = len(page)
                    break
                page.append(bucket)
        return HistoryPage(items=page, total=total, limit=limit, offset=q.offset,
                           from_=start, to=end, interval=q.interval)

    async def export_plan(self, q: ExportPlanQuery) -> ExportPlan:
        after, end = _export_window(q, q.chunk_rows, "chunk_rows")
        columns = ((queries.checked_fields(q.fields) or []) if q.fields is not None
                   else await self.repo.export_keys(q.device_id, after, end, EXPORT_PAGE_ROWS))
        ends = await self.repo.export_splits(q.device_id, after, end,
                                             q.chunk_rows * MAX_PLAN_CHUNKS, q.chunk_rows)
        more = len(ends) == MAX_PLAN_CHUNKS
        return ExportPlan(fields=columns, header=queries.csv_header(columns),
                          ends=[queries.iso(ts) for ts in ends],
                          next_after_ts=queries.iso(ends[-1]) if more else None)

    async def export_page(self, q: ExportPageQuery) -> ExportPage:
        after, end = _export_window(q, q.limit, "limit")
        until = queries.parse_time(q.until_ts, "until_ts")
        if until is not None:
            end = min(end, until + timedelta(microseconds=1))
        # The plan's columns (an empty list too: only the fixed ones); pages must agree on them.
        columns = (queries.checked_columns(q.fields) if q.fields is not None
                   else await self.repo.export_keys(q.device_id, after, end, EXPORT_PAGE_ROWS))
        page = await self.repo.export_csv(q.device_id, after, end, columns, q.limit,
                                          ANSWER_BUDGET_BYTES)
        more = page.rows < page.fetched or page.fetched == q.limit
        next_after = queries.iso(page.last_ts) if page.last_ts is not None and more else None
        return ExportPage(fields=columns, header=queries.csv_header(columns), csv=page.csv,
                          rows=page.rows, next_after_ts=next_after)

    async def stats(self) -> Stats:
        messages, readings = await self.repo.rates(RATE_WINDOW_MIN)
        return Stats(messages_per_minute=round(messages / RATE_WINDOW_MIN, 2),
                     readings_per_minute=round(readings / RATE_WINDOW_MIN, 2))


def _export_window(q: ExportRange, readings: int, name: str) -> tuple[datetime, datetime]:
    """(after, end) of an export request: keyset, strictly after the cursor (without one, just
    before `from`); `readings` (its parameter `name`) is checked against the page size."""
    start, end = queries.time_range(q.from_, q.to, datetime.now(UTC), default=None,
                                    longest=queries.MAX_EXPORT_RANGE)
    if not 1 <= readings <= MAX_EXPORT_PAGE_ROWS:
        raise BadRequest(f"{name} must be between 1 and {MAX_EXPORT_PAGE_ROWS}")
    after = queries.parse_time(q.after_ts, "after_ts")
    return (after if after is not None else start - timedelta(microseconds=1)), end


async def _iterate(buckets: list[Bucket]) -> AsyncGenerator[Bucket, None]:
    for bucket in buckets:
        yield bucket


def _checked_limit(limit: int | None, default: int) -> int:
    if limit is None:
        return default
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit

