"""The store against a real PostgreSQL: partitions on demand, once-only rows, retention."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from libs.common.codec import encode
from libs.common.messages.device import TelemetryBundle, TelemetryMessage, TelemetryReading
from services.telemetry.app import MIGRATIONS
from services.telemetry.partitions import Partitions, month_of, months_ahead, partition_name
from services.telemetry.repo import Repo
from services.telemetry.rows import Batch, decode_bundle
from services.telemetry.service import TelemetryService
from tests.support.database import migrated_pool


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("telemetry", MIGRATIONS, max_size=4) as pool:
        yield pool


def bundle(device_id: str, times: list[float], received_at: float,
           source: str = "sd") -> bytes:
    readings = [TelemetryReading(ts, False, {"v1": 230.0, "ep_imp": ts}) for ts in times]
    return encode(TelemetryBundle([TelemetryMessage(device_id, received_at, source, "gsm",
                                                    readings)]))


async def store(service: TelemetryService, *bundles: bytes) -> tuple[int, int]:
    batch = Batch()
    for data in bundles:
        batch.add(decode_bundle(data), service.retention_cutoff_ts())
    outcome = await service.store(batch)
    return sum(outcome.stored.values()), outcome.duplicates


async def test_rows_are_stored_once_across_months(pool: asyncpg.Pool) -> None:
    service = TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    now = datetime.now(UTC).timestamp()
    old = (datetime.now(UTC) - timedelta(days=200)).timestamp()  # a month not created ahead
    times = [old + i for i in range(50)] + [now - i for i in range(50)]
    assert await store(service, bundle(device, times, now)) == (100, 0)
    again = bundle(device, [*times[:10], now + 1], now, source="live")
    assert await store(service, again, again) == (1, 21)
    names = {partition_name(m) for m in await service.partitions.existing()}
    assert partition_name(month_of(datetime.fromtimestamp(old, UTC))) in names
    latest = await service.repo.latest(device)
    assert latest is not None and latest.ts.timestamp() == pytest.approx(now + 1)
    assert latest.source == "live"


async def test_retention_drops_whole_old_partitions(pool: asyncpg.Pool) -> None:
    writer = TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    now = datetime.now(UTC)
    forty_days_ago = (now - timedelta(days=40)).timestamp()
    await store(writer, bundle(device, [forty_days_ago], now.timestamp()))
    old_month = month_of(now - timedelta(days=40))
    assert old_month in await writer.partitions.existing()

    keeper = TelemetryService(Repo(pool), Partitions(pool), retention_days=1)
    dropped = await keeper.maintain(now)
    remaining = await keeper.partitions.existing()
    assert partition_name(old_month) in dropped
    assert old_month not in remaining
    assert set(months_ahead(now)) <= set(remaining)  # current and next months are kept
    # A reading older than the retention is not stored (and recreates no partition).
    assert await store(keeper, bundle(device, [forty_days_ago], now.timestamp())) == (0, 0)
    assert old_month not in await keeper.partitions.existing()


async def test_cached_partition_dropped_elsewhere_is_recreated(pool: asyncpg.Pool) -> None:
    partitions = Partitions(pool)
    month = (2021, 3)
    await partitions.ensure([month])
    await Partitions(pool).drop_expired(datetime(2021, 5, 1, tzinfo=UTC), retention_days=1)
    assert month not in await partitions.existing()
    partitions.forget()
    await partitions.ensure([month])
    assert month in await partitions.existing()


def test_decode_view_matches_the_shared_bundle() -> None:
    data = bundle("ACV-1", [1_700_000_000.5], 1_700_000_001.0)
    view = decode_bundle(data)
    original = msgspec.json.decode(data, type=TelemetryBundle)
    message = view.messages[0]
    assert message.device_id == original.messages[0].device_id
    assert message.readings[0].ts == original.messages[0].readings[0].ts
    assert msgspec.json.decode(message.readings[0].data) == original.messages[0].readings[0].data


async def test_hourly_rollups_are_reused_and_recomputed_after_late_rows(
        pool: asyncpg.Pool) -> None:
    from services.telemetry.schemas import HistoryQuery

    service = TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    day = (int(datetime.now(UTC).timestamp()) // 86400 - 3) * 86400  # a UTC midnight
    times = [float(day + m * 60) for m in range(0, 48 * 60, 10)]  # two days, every 10 min
    await store(service, bundle(device, times, day + 3 * 86400.0))

    async def query(interval: str, start: float, end: float) -> list[dict[str, object]]:
        page = await service.history(HistoryQuery(device_id=device, from_=start, to=end,
                                                  interval=interval, order="asc"))
        return [msgspec.to_builtins(b) for b in page.items]

    hourly = await query("1h", day + 1800, day + 86400)  # starts mid-hour: a partial edge
    assert hourly[0]["count"] == 3 and hourly[1]["count"] == 6
    cached = await pool.fetchval("SELECT count(*) FROM telemetry.hourly_rollups"
                                 " WHERE device_id = $1", device)
    assert cached == 23  # whole hours only
    assert await query("1h", day + 1800, day + 86400) == hourly
    daily = await query("1d", day, day + 2 * 86400)
    energy = daily[0]["fields"]["ep_imp"]  # type: ignore[index]
    assert daily[0]["count"] == 144
    assert energy["increase"] == times[143] - times[0]  # type: ignore[index]
    assert energy["avg"] == pytest.approx(sum(times[:144]) / 144)  # type: ignore[index]
    # A late reading (an SD replay) in a cached hour: the cache notices the new row count.
    await store(service, bundle(device, [day + 3600 + 5.0], day + 3 * 86400.0))
    again = await query("1h", day + 1800, day + 86400)
    assert again[1]["count"] == 7
    assert again[1]["fields"]["ep_imp"]["min"] == day + 3600  # type: ignore[index]


async def test_the_hourly_job_rolls_up_every_device(pool: asyncpg.Pool) -> None:
    service = TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)
    hour = datetime(2024, 5, 1, 10, tzinfo=UTC)
    devices = ["ACV-" + uuid.uuid4().hex[:12].upper() for _ in range(3)]
    for device in devices:
        await store(service, bundle(device, [hour.timestamp() + m * 60 for m in range(60)],
                                    hour.timestamp() + 3600))
    await service.partitions.ensure([(2024, 5)])
    assert await service.repo.roll_up_all(hour, hour + timedelta(hours=1)) >= 3
    cached = await service.repo.rollups(devices[0], hour, hour + timedelta(hours=1))
    readings, stats = cached[hour]
    assert readings == 60
    assert stats["v1"] == [60, 230.0, 230.0, 230.0 * 60]
