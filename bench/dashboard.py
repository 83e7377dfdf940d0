"""Dashboard summary and stats on 10,000 devices (target < 50 ms each).

    PYTHONPATH=. .venv/bin/python -m bench.dashboard [--devices 10000] [--runs 20]

A throw-away database with the health schema, devices of mixed state, connection and signal,
a month of alerts and 15 minutes of heartbeat tallies; prints the median and worst time of
`Dashboard.summary` and `Dashboard.stats` (the telemetry rate stubbed: it is another service).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.health_sweep import drop_database, fresh_database
from services.health.dashboard import Dashboard

FILL_DEVICES = """
INSERT INTO devices (device_id, status, firmware_version, connection_type, signal_strength,
                     last_seen, last_heartbeat)
SELECT 'DASH-' || n, (ARRAY['online', 'online', 'online', 'degraded', 'offline'])[1 + n % 5],
       '1.' || (n % 7) || '.0', CASE WHEN n % 3 = 0 THEN 'gsm' ELSE 'wifi' END,
       CASE WHEN n % 11 = 0 THEN NULL ELSE -40 - (n % 75) END, now(), now()
FROM generate_series(1, $1) n"""
# About three alerts per device over 30 days, one in ten still open.
FILL_ALERTS = """
INSERT INTO alerts (device_id, alert_type, severity, message, created_at, last_seen_at,
                    resolved_at)
SELECT 'DASH-' || (1 + n % $1), 'type_' || n, (ARRAY['info', 'warning', 'critical'])[1 + n % 3],
       'bench', now() - make_interval(days => n % 30), now(),
       CASE WHEN n % 10 = 0 THEN NULL ELSE now() END
FROM generate_series(1, $1 * 3) n"""
FILL_TALLIES = """
INSERT INTO heartbeat_minutes (minute, heartbeats)
SELECT date_trunc('minute', now()) - make_interval(mins => m), 10000
FROM generate_series(0, 14) m"""


async def telemetry_rate() -> Any:
    return {"messages_per_minute": 12345.0}


async def timed(job: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    await job()  # warm: statements prepared, pages cached
    took: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        await job()
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000, max(took) * 1000


async def main(devices: int, runs: int) -> None:
    name = f"acuvim_bench_{uuid.uuid4().hex[:8]}"
    pool = await fresh_database(name)
    try:
        await pool.execute(FILL_DEVICES, devices)
        await pool.execute(FILL_ALERTS, devices)
        await pool.execute(FILL_TALLIES)
        await pool.execute("ANALYZE")
        dashboard = Dashboard(pool, telemetry_rate)
        for label, job in (("summary", dashboard.summary), ("stats", dashboard.stats)):
            median_ms, worst_ms = await timed(job, runs)
            print(f"dashboard {label}: {devices:,} devices, {devices * 3:,} alerts: median "
                  f"{median_ms:.1f} ms, worst {worst_ms:.1f} ms over {runs} runs "
                  "(target < 50 ms)")
    finally:
        await pool.close()
        await drop_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.devices, args.runs))
