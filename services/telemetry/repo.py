"""SQL of the telemetry service; nothing else talks to its tables.

Bulk path: rows are copied (binary COPY) into a per-connection temporary staging table, then
moved into the partitioned table with `INSERT … SELECT … ON CONFLICT DO NOTHING` in the same
transaction, so a reading is stored once however often it arrives.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from services.telemetry.schemas import Latest
from services.telemetry.wide_sql import all_hourly_wide_sql, export_csv_sql, hourly_wide_sql

STAGING_COLUMNS = ("device_id", "ts", "data", "source", "connection", "received_at",
                   "clock_unsynced")
# `data` is staged as JSON text (exactly what the device sent, never re-encoded) and parsed
# once by PostgreSQL on the way into the jsonb column.
CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS telemetry_staging (
    device_id text, ts timestamptz, data text, source text, connection text,
    received_at timestamptz, clock_unsynced boolean
) ON COMMIT DELETE ROWS
"""
# A batch's sort (MOVE_STAGED) takes a few MB: in memory, not spilled to disk (4 MB default).
SORT_MEMORY = "SET LOCAL work_mem = '64MB'"
# Sorted so that replicas writing overlapping keys take index locks in the same order. The
# newest new reading of each device also becomes its latest reading, in the same statement and
# from the rows as inserted: each reading's JSON is parsed to jsonb once (a reading already
# stored updated the latest reading when it was stored, so only new rows can make it newer).
MOVE_STAGED = """
WITH stored AS (
    INSERT INTO telemetry_records
        (device_id, timestamp, data, source, connection, received_at, clock_unsynced)
    SELECT device_id, ts, data::jsonb, source, connection, received_at, clock_unsynced
    FROM telemetry_staging ORDER BY device_id, ts
    ON CONFLICT DO NOTHING
    RETURNING device_id, timestamp, data, source, connection, received_at, clock_unsynced
), latest AS (
    INSERT INTO latest_readings
        (device_id, timestamp, data, source, connection, received_at, clock_unsynced)
    SELECT DISTINCT ON (device_id) * FROM stored ORDER BY device_id, timestamp DESC
    ON CONFLICT (device_id) DO UPDATE SET
        timestamp = EXCLUDED.timestamp, data = EXCLUDED.data, source = EXCLUDED.source,
        connection = EXCLUDED.connection, received_at = EXCLUDED.received_at,
        clock_unsynced = EXCLUDED.clock_unsynced
    WHERE latest_readings.timestamp < EXCLUDED.timestamp
)
SELECT device_id, count(*) AS stored FROM stored GROUP BY device_id
"""
COUNT_MINUTE = """
INSERT INTO ingest_minutes (minute, messages, readings)
VALUES (date_trunc('minute', now()), $1, $2)
ON CONFLICT (minute) DO UPDATE SET messages = ingest_minutes.messages + EXCLUDED.messages,
                                   readings = ingest_minutes.readings + EXCLUDED.readings
"""
RATES = """
SELECT coalesce(sum(messages), 0) AS messages, coalesce(sum(readings), 0) AS readings
FROM ingest_minutes WHERE minute > now() - make_interval(mins => $1)
"""
PRUNE_MINUTES = "DELETE FROM ingest_minutes WHERE minute < now() - interval '1 day'"

SELECT_LATEST = """
SELECT device_id, timestamp AS ts, received_at, source, connection, clock_unsynced, data
FROM latest_readings WHERE device_id = $1
"""
COUNT_RANGE = """
SELECT count(*) FROM telemetry_records
WHERE device_id = $1 AND timestamp >= $2 AND timestamp < $3
"""
# A page of readings cut in SQL to an answer's byte budget ($6; a reading counts its stored
# size plus $8) so that only what is sent is read out; at least one reading. `data` leaves as
# JSON text (the service embeds it without decoding), restricted to the fields $7 if not NULL.
_RAW_PAGE = """
SELECT ts, received_at, source, connection, clock_unsynced, fetched,
       CASE WHEN $7::text[] IS NULL THEN data ELSE (
           SELECT coalesce(jsonb_object_agg(k, data -> k), '{{}}'::jsonb)
           FROM unnest($7::text[]) AS k WHERE data ? k) END::text AS data
FROM (
    SELECT timestamp AS ts, received_at, source, connection, clock_unsynced, data,
           count(*) OVER () AS fetched, row_number() OVER w AS n,
           sum(pg_column_size(data) + $8) OVER w AS upto
    FROM (SELECT * FROM telemetry_records
          WHERE device_id = $1 AND timestamp >= $2 AND timestamp < $3
          ORDER BY timestamp {order} LIMIT $4 OFFSET $5) AS page
    WINDOW w AS (ORDER BY timestamp {order} ROWS UNBOUNDED PRECEDING)
) AS sized
WHERE upto <= $6 OR n = 1
ORDER BY ts {order}
"""
RAW_PAGE_ASC = _RAW_PAGE.format(order="ASC")
RAW_PAGE_DESC = _RAW_PAGE.format(order="DESC")
# Buckets aligned on UTC midnight (date_bin's origin), so 1m..1d buckets follow the calendar.
BUCKET_COUNTS = """
SELECT date_bin($4::interval, timestamp, TIMESTAMPTZ '2000-01-01T00:00:00Z') AS bucket,
       count(*) AS n
FROM telemetry_records
WHERE device_id = $1 AND timestamp >= $2 AND timestamp < $3
GROUP BY 1
"""
_FIELD_STATS = """
SELECT date_bin($4::interval, t.timestamp, TIMESTAMPTZ '2000-01-01T00:00:00Z') AS bucket,
       kv.key AS field, count(*) AS n, min(kv.num) AS min, avg(kv.num) AS avg,
       max(kv.num) AS max
FROM telemetry_records t
CROSS JOIN LATERAL (
    SELECT f.key, f.value::float8 AS num FROM {pairs} WHERE jsonb_typeof(f.value) = 'number'
) kv
WHERE t.device_id = $1 AND t.timestamp >= $2 AND t.timestamp < $3
GROUP BY 1, 2
"""
FIELD_STATS_ALL = _FIELD_STATS.format(pairs="jsonb_each(t.data) AS f")
FIELD_STATS_SOME = _FIELD_STATS.format(
    pairs="(SELECT k AS key, t.data -> k AS value FROM unnest($5::text[]) AS k) AS f")
SELECT_LATEST_KEYS = "SELECT array(SELECT jsonb_object_keys(data)) FROM latest_readings" \
    " WHERE device_id = $1"


# CSV export: PostgreSQL writes the lines (RFC 4180, CRLF; wide_sql.export_csv_sql), the
# service only forwards text.
# Every $5-th timestamp of the first $4 readings after $2: where an export plan cuts chunks.
EXPORT_SPLITS = """
SELECT timestamp FROM (
    SELECT timestamp, row_number() OVER (ORDER BY timestamp) AS n FROM (
        SELECT timestamp FROM telemetry_records
        WHERE device_id = $1 AND timestamp > $2 AND timestamp < $3
        ORDER BY timestamp ASC LIMIT $4) AS l
) AS s WHERE n % $5 = 0 ORDER BY timestamp
"""
# Columns of an export when none are asked: the keys of its first readings (at most
# queries.MAX_EXPORT_COLUMNS, 1024).
EXPORT_KEYS = """
SELECT coalesce((array_agg(DISTINCT k ORDER BY k))[1:1024], '{}') FROM (
    SELECT data FROM telemetry_records
    WHERE device_id = $1 AND timestamp > $2 AND timestamp < $3
    ORDER BY timestamp ASC LIMIT $4
) r, jsonb_object_keys(r.data) AS k
"""
SELECT_ROLLUPS = """
SELECT hour, readings, stats FROM hourly_rollups
WHERE device_id = $1 AND hour >= $2 AND hour < $3
"""
SAVE_ROLLUPS = """
INSERT INTO hourly_rollups (device_id, hour, readings, stats)
SELECT $1, u.hour, u.readings, u.stats
FROM unnest($2::timestamptz[], $3::int[], $4::jsonb[]) AS u(hour, readings, stats)
ON CONFLICT (device_id, hour) DO UPDATE SET readings = EXCLUDED.readings,
                                            stats = EXCLUDED.stats
"""
# Rollups of every device for a range of complete hours (the hourly job), in one statement.
ROLL_UP_ALL = """
WITH counts AS (
    SELECT device_id, date_bin('1 hour', timestamp, TIMESTAMPTZ '2000-01-01T00:00:00Z') AS hour,
           count(*) AS readings
    FROM telemetry_records WHERE timestamp >= $1 AND timestamp < $2 GROUP BY 1, 2
), fields AS (
    SELECT t.device_id, date_bin('1 hour', t.timestamp, TIMESTAMPTZ '2000-01-01T00:00:00Z')
           AS hour, kv.key, count(*) AS n, min(kv.num) AS low, max(kv.num) AS high,
           sum(kv.num) AS total
    FROM telemetry_records t
    CROSS JOIN LATERAL (
        SELECT f.key, f.value::float8 AS num FROM jsonb_each(t.data) AS f
        WHERE jsonb_typeof(f.value) = 'number'
    ) kv
    WHERE t.timestamp >= $1 AND t.timestamp < $2 GROUP BY 1, 2, 3
), stats AS (
    SELECT device_id, hour, jsonb_object_agg(key, jsonb_build_array(n, low, high, total))
           AS stats
    FROM fields GROUP BY 1, 2
)
INSERT INTO hourly_rollups (device_id, hour, readings, stats)
SELECT c.device_id, c.hour, c.readings, coalesce(s.stats, '{}'::jsonb)
FROM counts c LEFT JOIN stats s USING (device_id, hour)
ON CONFLICT (device_id, hour) DO UPDATE SET readings = EXCLUDED.readings,
                                            stats = EXCLUDED.stats
"""
# Devices with readings at or after $1 and the keys of their latest readings (the hourly job:
# the partitions have no index on timestamp alone, so it reads each device's rows through the
# primary key instead of scanning the month).
RECENT_DEVICES = """
SELECT coalesce(array_agg(device_id ORDER BY device_id), '{}') AS devices,
       coalesce((SELECT array_agg(DISTINCT k ORDER BY k)
                 FROM latest_readings r, jsonb_object_keys(r.data) AS k
                 WHERE r.timestamp >= $1), '{}') AS keys
FROM latest_readings WHERE timestamp >= $1
"""
SAVE_ALL_ROLLUPS = """
INSERT INTO hourly_rollups (device_id, hour, readings, stats)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::jsonb[])
ON CONFLICT (device_id, hour) DO UPDATE SET readings = EXCLUDED.readings,
                                            stats = EXCLUDED.stats
"""
PRUNE_ROLLUPS = "DELETE FROM hourly_rollups WHERE hour < $1"
DELETE_DEVICE_ROLLUPS = "DELETE FROM hourly_rollups WHERE device_id = $1"
DELETE_DEVICE_RECORDS = "DELETE FROM telemetry_records WHERE device_id = $1"
DELETE_DEVICE_LATEST = "DELETE FROM latest_readings WHERE device_id = $1"


class RawRow(msgspec.Struct, frozen=True, kw_only=True):
    ts: datetime
    received_at: datetime
    source: str
    connection: str | None
    clock_unsynced: bool
    data: str  # the reading's JSON object
    fetched: int  # readings read before the byte budget cut the page


class StatRow(msgspec.Struct, frozen=True, kw_only=True):
    bucket: datetime
    field: str
    n: int
    min: float
    avg: float
    max: float


class CsvPage(msgspec.Struct, frozen=True, kw_only=True):
    csv: str  # CSV lines, CRLF-terminated
    rows: int  # lines in `csv`
    last_ts: datetime | None  # timestamp of the last line
    fetched: int  # readings read (rows < fetched: the byte budget cut the page)


class HourRollup(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    hour: datetime
    readings: int
    extra: bool  # readings with fields outside those computed
    stats: dict[str, list[float]]


StagedRow = tuple[str, datetime, str, str, str | None, datetime, bool]


class Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def store(self, rows: Sequence[StagedRow], messages: int) -> dict[str, int]:
        """Store rows once each, in one transaction; answer new rows per device."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(CREATE_STAGING)
            await conn.execute(SORT_MEMORY)
            await conn.copy_records_to_table("telemetry_staging", records=rows,
                                             columns=STAGING_COLUMNS)
            stored = {r["device_id"]: r["stored"] for r in await conn.fetch(MOVE_STAGED)}
            await conn.execute(COUNT_MINUTE, messages, sum(stored.values()))
        return stored

    async def latest(self, device_id: str) -> Latest | None:
        row = await self.pool.fetchrow(SELECT_LATEST, device_id)
        return Latest(**dict(row)) if row else None

    async def count(self, device_id: str, start: datetime, end: datetime) -> int:
        value = await self.pool.fetchval(COUNT_RANGE, device_id, start, end)
        return int(value)

    async def raw_page(self, device_id: str, start: datetime, end: datetime, *, descending: bool,
                       limit: int, offset: int, fields: list[str] | None, budget_bytes: int,
                       overhead_bytes: int) -> list[RawRow]:
        sql = RAW_PAGE_DESC if descending else RAW_PAGE_ASC
        rows = await self.pool.fetch(sql, device_id, start, end, limit, offset, budget_bytes,
                                     fields, overhead_bytes)
        return [RawRow(**dict(r)) for r in rows]

    async def bucket_counts(self, device_id: str, start: datetime, end: datetime,
                            interval: timedelta) -> dict[datetime, int]:
        rows = await self.pool.fetch(BUCKET_COUNTS, device_id, start, end, interval)
        return {r["bucket"]: r["n"] for r in rows}

    async def field_stats(self, device_id: str, start: datetime, end: datetime,
                          interval: timedelta, fields: list[str] | None) -> list[StatRow]:
        if fields is None:
            rows = await self.pool.fetch(FIELD_STATS_ALL, device_id, start, end, interval)
        else:
            rows = await self.pool.fetch(FIELD_STATS_SOME, device_id, start, end, interval,
                                         fields)
        return [StatRow(**dict(r)) for r in rows]

    async def latest_keys(self, device_id: str) -> list[str]:
        keys: list[str] | None = await self.pool.fetchval(SELECT_LATEST_KEYS, device_id)
        return keys or []

    async def hourly_wide(self, device_id: str, start: datetime, end: datetime,
                          fields: list[str]) -> tuple[dict[datetime, dict[str, list[float]]],
                                                      set[datetime]]:
        """{hour: {field: [count, min, max, sum]}} of `fields` in [start, end), and the hours
        whose readings also hold other fields."""
        rows = await self.pool.fetch(hourly_wide_sql(len(fields)), device_id, start, end,
                                     fields, *fields)
        stats: dict[datetime, dict[str, list[float]]] = {}
        for row in rows:
            values = list(row.values())[3:]
            stats[row["hour"]] = {name: values[4 * i:4 * i + 4] for i, name in enumerate(fields)
                                  if values[4 * i]}
        return stats, {r["hour"] for r in rows if r["extra"]}

    async def export_keys(self, device_id: str, after: datetime, end: datetime,
                          readings: int) -> list[str]:
        keys: list[str] = await self.pool.fetchval(EXPORT_KEYS, device_id, after, end, readings)
        return keys

    async def export_splits(self, device_id: str, after: datetime, end: datetime,
                            readings: int, every: int) -> list[datetime]:
        """The timestamps of every `every`-th of the next `readings` readings after `after`."""
        rows = await self.pool.fetch(EXPORT_SPLITS, device_id, after, end, readings, every)
        return [r["timestamp"] for r in rows]

    async def export_csv(self, device_id: str, after: datetime, end: datetime,
                         fields: list[str], limit: int, budget_bytes: int) -> CsvPage:
        """CSV lines of up to `limit` readings after `after`, cut to `budget_bytes` (at least
        one line)."""
        row = await self.pool.fetchrow(export_csv_sql(len(fields)), device_id, after, end,
                                       fields, limit, budget_bytes, *fields)
        assert row is not None
        return CsvPage(**dict(row))

    async def rates(self, window_min: int) -> tuple[int, int]:
        row = await self.pool.fetchrow(RATES, window_min)
        assert row is not None
        return int(row["messages"]), int(row["readings"])

    async def prune_minutes(self) -> None:
        await self.pool.execute(PRUNE_MINUTES)

    async def rollups(self, device_id: str, start: datetime,
                      end: datetime) -> dict[datetime, tuple[int, dict[str, list[float]]]]:
        rows = await self.pool.fetch(SELECT_ROLLUPS, device_id, start, end)
        return {r["hour"]: (r["readings"], r["stats"]) for r in rows}

    async def save_rollups(self, device_id: str,
                           hours: list[tuple[datetime, int, dict[str, list[float]]]]) -> None:
        await self.pool.execute(SAVE_ROLLUPS, device_id, [h[0] for h in hours],
                                [h[1] for h in hours], [h[2] for h in hours])

    async def roll_up_all(self, start: datetime, end: datetime) -> int:
        status = await self.pool.execute(ROLL_UP_ALL, start, end)
        return int(status.split()[-1])

    async def recent_devices(self, since: datetime) -> tuple[list[str], list[str]]:
        """Devices with readings at or after `since`, and the keys of their latest readings."""
        row = await self.pool.fetchrow(RECENT_DEVICES, since)
        assert row is not None
        return list(row["devices"]), list(row["keys"])

    async def all_hourly_wide(self, start: datetime, end: datetime, devices: list[str],
                              fields: list[str]) -> list[HourRollup]:
        """Hourly statistics of `fields` for `devices` in [start, end) (hourly_wide's shape)."""
        rows = await self.pool.fetch(all_hourly_wide_sql(len(fields)), start, end, fields,
                                     devices, *fields)
        out = []
        for row in rows:
            values = list(row.values())[4:]
            out.append(HourRollup(device_id=row["device_id"], hour=row["hour"],
                                  readings=row["readings"], extra=row["extra"], stats={
                                      name: values[4 * i:4 * i + 4]
                                      for i, name in enumerate(fields) if values[4 * i]}))
        return out

    async def save_all_rollups(self, rollups: list[HourRollup]) -> None:
        await self.pool.execute(SAVE_ALL_ROLLUPS, [r.device_id for r in rollups],
                                [r.hour for r in rollups], [r.readings for r in rollups],
                                [r.stats for r in rollups])

    async def prune_rollups(self, before: datetime) -> None:
        await self.pool.execute(PRUNE_ROLLUPS, before)

    async def delete_device(self, device_id: str) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            status = await conn.execute(DELETE_DEVICE_RECORDS, device_id)
            await conn.execute(DELETE_DEVICE_LATEST, device_id)
            await conn.execute(DELETE_DEVICE_ROLLUPS, device_id)
        return int(status.split()[-1])
