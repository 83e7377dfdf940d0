"""Monthly partitions of telemetry_records (the DDL half of the repository).

A partition `telemetry_records_yYYYYmMM` holds one calendar month (UTC). The current month and
the next two are created ahead (at start and daily); a month outside them (an old SD replay) is
created on demand before its rows are written. Retention drops whole partitions whose month
ended more than `retention_days` ago: data is kept at least that long, never with a DELETE.

DDL cannot take bind parameters: names and bounds are built here from integers only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)

PARENT = "telemetry_records"
MONTHS_AHEAD = 2
_NAME = re.compile(rf"^{PARENT}_y(\d{{4}})m(\d{{2}})$")
# Serializes partition DDL between replicas (creating the same month twice would fail).
LOCK_PARTITIONS = "SELECT pg_advisory_xact_lock(hashtext('acuvim-telemetry-partitions'))"
CREATE_PARTITION = (
    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF " + PARENT +
    " FOR VALUES FROM ('{start}') TO ('{end}')"
)
LIST_PARTITIONS = """
SELECT c.relname AS name FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'telemetry_records'::regclass
"""
DROP_PARTITION = "DROP TABLE IF EXISTS {name}"

Month = tuple[int, int]  # (year, month)


def month_of(ts: datetime) -> Month:
    return ts.year, ts.month


def next_month(month: Month) -> Month:
    year, mon = month
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def month_start(month: Month) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def partition_name(month: Month) -> str:
    return f"{PARENT}_y{month[0]:04d}m{month[1]:02d}"


def parse_partition(name: str) -> Month | None:
    match = _NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def months_ahead(now: datetime, ahead: int = MONTHS_AHEAD) -> list[Month]:
    months = [month_of(now)]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return months


def expired(months: Iterable[Month], now: datetime, retention_days: int) -> list[Month]:
    """Months that ended before the retention cutoff (every reading in them is older)."""
    cutoff = now - timedelta(days=retention_days)
    return sorted(m for m in months if month_start(next_month(m)) <= cutoff)


class Partitions:
    """Creates months on demand (cached per process) and drops expired ones."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._known: set[Month] = set()

    def forget(self) -> None:
        """Forget the cache (a partition may have been dropped by another replica)."""
        self._known.clear()

    async def ensure(self, months: Iterable[Month]) -> None:
        missing = sorted(set(months) - self._known)
        if not missing:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_PARTITIONS)
            existing = {parse_partition(r["name"]) for r in await conn.fetch(LIST_PARTITIONS)}
            for month in missing:
                if month not in existing:
                    await conn.execute(CREATE_PARTITION.format(
                        name=partition_name(month), start=month_start(month).isoformat(),
                        end=month_start(next_month(month)).isoformat()))
                    log.info("created partition %s", partition_name(month))
        self._known.update(missing)

    async def existing(self) -> list[Month]:
        rows = await self.pool.fetch(LIST_PARTITIONS)
        return sorted(m for m in (parse_partition(r["name"]) for r in rows) if m is not None)

    async def drop_expired(self, now: datetime, retention_days: int) -> list[str]:
        """Drop the partitions wholly older than the retention; answer their names."""
        dropped: list[str] = []
        for month in expired(await self.existing(), now, retention_days):
            name = partition_name(month)
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(LOCK_PARTITIONS)
                await conn.execute(DROP_PARTITION.format(name=name))
            self._known.discard(month)
            dropped.append(name)
            log.info("dropped partition %s (retention %d days)", name, retention_days)
        return dropped
