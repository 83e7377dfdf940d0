"""1h/1d bucket pages against a real PostgreSQL: pages built chunk by chunk agree with one
whole answer in both orders, and cold hours computed from the readings (the one-pass statement
over the latest reading's fields, the generic one for hours with other fields) agree with
values computed here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
import pytest

from services.telemetry import rollups
from services.telemetry.app import MIGRATIONS
from services.telemetry.partitions import Partitions
from services.telemetry.repo import Repo
from services.telemetry.schemas import HistoryQuery
from services.telemetry.service import TelemetryService
from tests.support.database import migrated_pool

START = datetime(2025, 4, 1, tzinfo=UTC)
HOURS = 5 * 24 + 7  # more than one chunk of 1h buckets


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[TelemetryService]:
    async with migrated_pool("telemetry", MIGRATIONS, max_size=4) as pool:
        yield TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)


def reading(minute: int) -> dict[str, Any]:
    data: dict[str, Any] = {"v1": 220.0 + minute % 7, "ep_imp": 1000.0 + minute,
                            "status": "ok"}
    if 30 * 60 <= minute < 31 * 60:  # one hour with a register the latest reading lacks
        data["thd"] = float((minute // 10) % 5)
    return data


@pytest.fixture(scope="module")
async def device(service: TelemetryService) -> str:
    device_id = "ACV-" + uuid.uuid4().hex[:12].upper()
    minutes = range(0, HOURS * 60, 10)
    await service.partitions.ensure([(2025, 4)])
    await service.repo.pool.executemany(
        "INSERT INTO telemetry_records (device_id, timestamp, data) VALUES ($1, $2, $3)",
        [(device_id, START + timedelta(minutes=m), reading(m)) for m in minutes])
    await service.repo.pool.execute(
        "INSERT INTO latest_readings (device_id, timestamp, data, source, received_at,"
        " clock_unsynced) VALUES ($1, $2, $3, 'live', now(), false)",
        device_id, START + timedelta(minutes=minutes[-1]), reading(minutes[-1]))
    return device_id


async def pages(service: TelemetryService, device_id: str, interval: str,
                order: Literal["asc", "desc"],
                limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = await service.history(HistoryQuery(
            device_id=device_id, from_=START.timestamp() + 1800,
            to=(START + timedelta(hours=HOURS)).timestamp(), interval=interval, order=order,
            limit=limit, offset=len(out)))
        out.extend(msgspec.to_builtins(page.items))
        if len(out) >= page.total:
            return out


async def test_cold_hours_match_values_computed_here(service: TelemetryService,
                                                     device: str) -> None:
    hourly = await pages(service, device, "1h", "asc", 1000)
    assert len(hourly) == HOURS
    assert hourly[0]["count"] == 3  # the range starts mid-hour: a partial edge
    for index, bucket in enumerate(hourly[1:], start=1):
        minutes = range(index * 60, index * 60 + 60, 10)
        v1 = [220.0 + m % 7 for m in minutes]
        assert bucket["count"] == 6
        assert bucket["fields"]["v1"]["min"] == min(v1)
        assert bucket["fields"]["v1"]["avg"] == pytest.approx(sum(v1) / 6)
        assert bucket["fields"]["ep_imp"]["increase"] == 50.0
        assert ("thd" in bucket["fields"]) == (index == 30)
    assert hourly[30]["fields"]["thd"]["max"] == 4.0
    cached = await service.repo.rollups(device, START, START + timedelta(hours=HOURS))
    assert len(cached) == HOURS - 1 and cached[START + timedelta(hours=30)][1]["thd"][0] == 6


async def test_pages_agree_with_one_answer(service: TelemetryService, device: str) -> None:
    for interval in ("1h", "1d"):
        whole = await pages(service, device, interval, "asc", 1000)
        assert await pages(service, device, interval, "asc", 7) == whole
        assert await pages(service, device, interval, "desc", 50) == whole[::-1]
    assert len(whole) == 6 and whole[0]["count"] == 141  # day one from 00:30


async def test_chunks_stop_where_the_page_is_full(service: TelemetryService,
                                                  device: str) -> None:
    await service.repo.pool.execute("DELETE FROM hourly_rollups WHERE device_id = $1", device)
    page = await service.history(HistoryQuery(
        device_id=device, from_=START.timestamp(),
        to=(START + timedelta(hours=HOURS)).timestamp(), interval="1h", limit=10))
    assert page.total == HOURS and len(page.items) == 10
    cached = await service.repo.rollups(device, START, START + timedelta(hours=HOURS))
    assert len(cached) <= rollups.CHUNK_BUCKETS  # only the newest chunk was computed


async def test_raw_pages_embed_the_stored_json(service: TelemetryService, device: str) -> None:
    window = {"from_": START.timestamp(), "to": (START + timedelta(hours=2)).timestamp()}
    page = await service.history(HistoryQuery(device_id=device, order="asc", limit=5,
                                              offset=3, **window))  # type: ignore[arg-type]
    assert page.total == 12 and page.limit == 5
    body = msgspec.json.decode(msgspec.json.encode(page))
    assert [item["data"]["ep_imp"] for item in body["items"]] == [1030.0, 1040.0, 1050.0,
                                                                  1060.0, 1070.0]
    only = await service.history(HistoryQuery(device_id=device, order="desc", fields=["v1", "x"],
                                              **window))  # type: ignore[arg-type]
    data = [msgspec.json.decode(item.data) for item in only.items]  # type: ignore[union-attr]
    assert only.total == 12 and data[0] == {"v1": 220.0 + 110 % 7}


async def test_the_hourly_job_reads_each_device_once(service: TelemetryService) -> None:
    hour = START + timedelta(days=19, hours=10)
    devices = ["ACV-" + uuid.uuid4().hex[:12].upper() for _ in range(3)]
    pool = service.repo.pool
    for index, device_id in enumerate(devices):
        rows = [(device_id, hour + timedelta(minutes=m),
                 {"v1": float(m + index), "status": "ok", **({"odd": 1.0} if index == 2 else {})})
                for m in range(0, 60, 5)]
        await pool.executemany("INSERT INTO telemetry_records (device_id, timestamp, data)"
                               " VALUES ($1, $2, $3)", rows)
        await pool.execute("INSERT INTO latest_readings (device_id, timestamp, data, source,"
                           " received_at, clock_unsynced) VALUES ($1, $2, $3, 'live', now(),"
                           " false)", device_id, rows[-1][1], {"v1": 1.0, "status": "ok"})
    assert await rollups.roll_up_all(service.repo, hour, hour + timedelta(hours=1)) == 3
    for index, device_id in enumerate(devices):
        [(readings, stats)] = (await service.repo.rollups(device_id, hour,
                                                          hour + timedelta(hours=1))).values()
        values = [float(m + index) for m in range(0, 60, 5)]
        assert readings == 12
        assert stats["v1"] == [12, min(values), max(values), sum(values)]
        assert ("odd" in stats) == (index == 2)  # a field the latest readings lack
