"""CSV written by PostgreSQL (export pages) against the rules of queries.csv_cell and the csv
module: RFC 4180 quoting, formulas neutralised, plain numbers left alone, pages cut to a byte
budget and chained by their cursor without losing or repeating a reading."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.telemetry import queries
from services.telemetry.app import MIGRATIONS
from services.telemetry.partitions import Partitions
from services.telemetry.repo import Repo
from services.telemetry.schemas import ExportPageQuery, ExportPlanQuery
from services.telemetry.service import MAX_PLAN_CHUNKS, TelemetryService
from tests.support.database import migrated_pool

START = datetime(2025, 3, 1, tzinfo=UTC)
TRICKY: list[dict[str, Any]] = [
    {"a": "=1+2", "b": 1.5, "c": None}, {"a": "+x", "b": -3.5, "c": True},
    {"a": "-12.5", "b": 7}, {"a": "\tx", "b": 'a,b "c"'}, {"a": "\rx", "b": "line\nbreak"},
    {"a": "@sum", "b": "ok", "c": False}, {"a": "", "b": 0.1}, {"a": "é ünï", "b": "1e5"},
    {"a": "tab\tinside", "b": -0.25},
    # Lines the fast path writes whole and then checks as a line: a comma alone, a formula
    # after a plain first cell, signed numbers as text, an array with commas but no quote.
    {"a": "a,b", "b": 2}, {"a": "ok", "b": "-1+2"}, {"a": "+5", "b": "-.5e3"},
    {"a": [1, 2], "b": 3}, {"a": "x", "b": "y", "c": "=z"}, {"a": "1-2", "b": "a@b=c"},
]


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[TelemetryService]:
    async with migrated_pool("telemetry", MIGRATIONS, max_size=2) as pool:
        yield TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)


async def insert(service: TelemetryService, device_id: str,
                 rows: Sequence[tuple[datetime, dict[str, Any], str | None]]) -> None:
    await service.partitions.ensure([(START.year, START.month)])
    await service.repo.pool.executemany(
        "INSERT INTO telemetry_records (device_id, timestamp, data, source, connection)"
        " VALUES ($1, $2, $3, 'sd', $4)", [(device_id, ts, data, conn) for ts, data, conn in rows])


def expected_csv(rows: list[tuple[datetime, dict[str, Any], str | None]],
                 fields: list[str]) -> str:
    """What the Python rules write (numbers as JSON writes them)."""
    def cell(value: Any) -> str:
        return repr(value) if type(value) in (int, float) else queries.csv_cell(value)

    return queries.csv_rows([[queries.iso(ts), "sd", cell(conn), "false",
                              *(cell(data.get(f)) for f in fields)] for ts, data, conn in rows])


async def export_all(service: TelemetryService, device_id: str, end: datetime, *,
                     limit: int) -> tuple[str, int]:
    query = ExportPageQuery(device_id=device_id, from_=START.timestamp(), to=end.timestamp(),
                            limit=limit)
    page = await service.export_page(query)
    text, pages = page.header + page.csv, 1
    while page.next_after_ts is not None:
        page = await service.export_page(ExportPageQuery(
            device_id=device_id, from_=START.timestamp(), to=end.timestamp(),
            fields=page.fields, after_ts=page.next_after_ts, limit=limit))
        text, pages = text + page.csv, pages + 1
    return text, pages


async def test_cells_match_the_python_rules(service: TelemetryService) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    connections = ["gsm", None, "wifi", "=cmd", "-x"]  # a device writes its connection too
    rows = [(START + timedelta(seconds=i, microseconds=250000 if i == 3 else 0), data,
             connections[i % len(connections)]) for i, data in enumerate(TRICKY)]
    await insert(service, device, rows)
    text, _ = await export_all(service, device, START + timedelta(hours=1), limit=100)
    header, _, body = text.partition("\r\n")
    assert header == "timestamp,source,connection,clock_unsynced,a,b,c"
    assert body == expected_csv(rows, ["a", "b", "c"])
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[1][4] == "'=1+2" and parsed[3][4] == "-12.5" and parsed[5][5] == "line\nbreak"
    assert parsed[4][1:] == ["sd", "'=cmd", "false", "'\tx", 'a,b "c"', ""]


async def test_nested_values_are_quoted_json(service: TelemetryService) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    await insert(service, device, [(START, {"a": {"k": [1, 2]}, "b": [1, "x"]}, None)])
    text, _ = await export_all(service, device, START + timedelta(hours=1), limit=10)
    assert list(csv.reader(io.StringIO(text)))[1][4:] == ['{"k": [1, 2]}', '[1, "x"]']


async def test_pages_cut_to_the_budget_chain_without_gaps(service: TelemetryService) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    wide = {f"r{n:02d}": n * 1.5 for n in range(40)}
    rows: list[tuple[datetime, dict[str, Any], str | None]] = [
        (START + timedelta(minutes=m), {**wide, "m": m}, "gsm") for m in range(3000)]
    await insert(service, device, rows)
    text, pages = await export_all(service, device, START + timedelta(days=3), limit=5000)
    parsed = list(csv.reader(io.StringIO(text)))
    assert pages > 1  # 3,000 wide lines do not fit one answer
    column = parsed[0].index("m")
    assert [int(r[column]) for r in parsed[1:]] == list(range(3000))
    assert text.count("\r\n") == 3001


async def test_wide_readings_export_every_column(service: TelemetryService) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    wide = {f"r{n:03d}": float(n) for n in range(250)}
    rows: list[tuple[datetime, dict[str, Any], str | None]] = [
        (START + timedelta(minutes=m), {**wide, "label": "=x" if m else "ok"}, None)
        for m in range(3)]
    await insert(service, device, rows)
    text, _ = await export_all(service, device, START + timedelta(hours=1), limit=10)
    parsed = list(csv.reader(io.StringIO(text)))
    assert len(parsed[0]) == 4 + 251 and parsed[1][-1] == "249.0"
    assert [r[4] for r in parsed[1:]] == ["ok", "'=x", "'=x"]  # label sorts first
    assert text.partition("\r\n")[2] == expected_csv(rows, sorted([*wide, "label"]))


async def test_a_plan_cuts_chunks_and_continues_past_its_limit(service: TelemetryService) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    count = MAX_PLAN_CHUNKS * 2 + 7
    rows: list[tuple[datetime, dict[str, Any], str | None]] = [
        (START + timedelta(seconds=s), {"s": s}, None) for s in range(count)]
    await insert(service, device, rows)
    window = {"device_id": device, "from_": START.timestamp(),
              "to": (START + timedelta(days=1)).timestamp(), "chunk_rows": 2}
    plan = await service.export_plan(ExportPlanQuery(**window))
    assert plan.fields == ["s"] and plan.header.endswith(",s\r\n")
    assert len(plan.ends) == MAX_PLAN_CHUNKS  # every 2nd reading's time: 1, 3, 5, ...
    assert plan.ends[:2] == [queries.iso(START + timedelta(seconds=1)),
                             queries.iso(START + timedelta(seconds=3))]
    assert plan.next_after_ts == plan.ends[-1]
    rest = await service.export_plan(ExportPlanQuery(**window, fields=plan.fields,
                                                     after_ts=plan.next_after_ts))
    assert len(rest.ends) == MAX_PLAN_CHUNKS + 3 - MAX_PLAN_CHUNKS and rest.next_after_ts is None
    # A chunk's page holds exactly its readings: after the previous end, up to its own end.
    page = await service.export_page(ExportPageQuery(
        device_id=device, from_=window["from_"], to=window["to"], fields=["s"],
        after_ts=rest.ends[0], until_ts=rest.ends[1], limit=3))
    assert [line.split(",")[-1] for line in page.csv.split("\r\n")[:-1]] == [
        str(MAX_PLAN_CHUNKS * 2 + 2), str(MAX_PLAN_CHUNKS * 2 + 3)]
    assert page.next_after_ts is None
