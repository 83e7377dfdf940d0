"""History of one device with 30 days of one-minute readings (50 registers), through the gateway.

    .venv/bin/python bench/history.py [--days 30] [--runs 10] [--only export_all ...]

Measures, over HTTP (gateway -> NATS request-reply -> telemetry -> PostgreSQL): interval=1h
over one day and over the 30 days, raw readings of one day (one page), and the CSV export of
the 30 days (rows/s, median of --export-runs). Writes bench/results/history.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.support.fleet import bench_console, reading, wait_log  # noqa: E402
from libs.common import db  # noqa: E402
from libs.common.codec import encode  # noqa: E402
from libs.common.messages.device import (  # noqa: E402
    TelemetryBundle,
    TelemetryMessage,
    TelemetryReading,
)
from services.telemetry.partitions import Partitions  # noqa: E402
from services.telemetry.repo import Repo  # noqa: E402
from services.telemetry.rows import Batch, decode_bundle  # noqa: E402
from services.telemetry.service import TelemetryService  # noqa: E402
from tests.support.console import Console  # noqa: E402

DEVICE = "ACV-HISTORY0001"
RESULTS = ROOT / "bench" / "results" / "history.json"


async def load(console: Console, days: int) -> tuple[float, float]:
    """Store `days` of one-minute readings ending now; answer (first_ts, end_ts)."""
    pool = await db.create_pool(console.database_url, "telemetry", max_size=2)
    service = TelemetryService(Repo(pool), Partitions(pool), retention_days=3650)
    end = float(int(time.time()) // 60 * 60)
    first = end - days * 86400
    minutes = days * 1440
    for start in range(0, minutes, 5000):
        readings = [TelemetryReading(first + m * 60, False, cast(Any, reading(m)))
                    for m in range(start, min(start + 5000, minutes))]
        batch = Batch()
        batch.add(decode_bundle(encode(TelemetryBundle(
            [TelemetryMessage(DEVICE, end, "live", "gsm", readings)]))), 0.0)
        await service.store(batch)
    await pool.execute("VACUUM ANALYZE telemetry.telemetry_records")
    await pool.close()
    return first, end


async def timed(client: httpx.AsyncClient, params: dict[str, Any], runs: int,
                path: str = "history") -> dict[str, Any]:
    url = f"/api/devices/{DEVICE}/telemetry/{path}"
    started = time.perf_counter()
    while True:  # warm-up (plans, caches; hourly rollups of data loaded behind the service)
        reply = await client.get(url, params=params)
        if reply.status_code != 503:
            break
    assert reply.status_code == 200, reply.text
    cold_s = time.perf_counter() - started
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        reply = await client.get(url, params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, reply.text
    items = len(reply.json()["items"])
    return {"cold_first_s": round(cold_s, 2), "median_ms": round(statistics.median(times), 1),
            "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 1), "items": items}


async def export(client: httpx.AsyncClient, first: float, end: float,
                 runs: int) -> dict[str, Any]:
    """The whole range as CSV, `runs` times: the median run's rows/s (and the slowest)."""
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        rows, size = -1, 0
        async with client.stream("GET", f"/api/devices/{DEVICE}/telemetry/export",
                                 params={"from": first, "to": end + 1}, timeout=300) as reply:
            assert reply.status_code == 200
            async for chunk in reply.aiter_bytes():
                rows += chunk.count(b"\n")
                size += len(chunk)
        rates.append(rows / (time.perf_counter() - started))
    return {"rows": rows, "bytes": size, "runs": runs,
            "rows_per_s": round(statistics.median(rates)), "slowest_rows_per_s": round(min(rates))}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    console = bench_console(Path(tempfile.mkdtemp(prefix="bench-history-")))
    console.start("telemetry")
    try:
        await wait_log(console, "telemetry", "telemetry ready")
        console.start("gateway")
        first, end = await load(console, args.days)
        async with console.client("viewer", timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/api/health")).status_code in (200, 503):
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            day = {"from": end - 86400, "to": end + 1}
            whole = {"from": first, "to": end + 1}
            parts: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
                "interval_1h_one_day": lambda: timed(client, {**day, "interval": "1h"},
                                                     args.runs),
                "interval_1h_30_days": lambda: timed(client, {**whole, "interval": "1h"},
                                                     args.runs),
                "raw_one_day_first_page": lambda: timed(client, {**day, "limit": 1000},
                                                        args.runs),
                "export_all": lambda: export(client, first, end, args.export_runs),
            }
            out: dict[str, Any] = {"readings": args.days * 1440}
            for name, part in parts.items():
                if not args.only or name in args.only:
                    out[name] = await part()
            return out
    finally:
        console.stop_all()
        await console.delete_streams()
        await console.drop_database()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--export-runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="parts to run (default: all), e.g. export_all")
    outcome = asyncio.run(main(parser.parse_args()))
    for name, value in outcome.items():
        print(f"{name:<26}{json.dumps(value)}")
    print("targets: interval_1h < 100 ms, raw one day < 50 ms, export >= 50000 rows/s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(outcome, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(ROOT)}")
