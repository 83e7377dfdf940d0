"""The health sweep on 100,000 devices (target < 1 s), against a naive per-device loop.

    PYTHONPATH=. .venv/bin/python -m bench.health_sweep [--devices 100000] [--naive 2000]
        [--runs 3]

Builds a throw-away database with the health schema, fills it with devices whose last sign of
life is spread so that ~10 % are due for degraded and ~10 % for offline, then times:
- the sweep as the service runs it (`DeviceInput.sweep`: states, offline alerts and their facts
  stored in the outbox, committed), --runs times per scenario on a fresh fill (median and
  slowest: other work on the machine moves single runs); publishing the outbox is the relay's
  work after the commit and is not timed;
- the naive baseline: read every device, decide in Python, one UPDATE per changed device, on
  a smaller fleet, extrapolated linearly.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg

from libs.common import db
from libs.common.subjects import Subjects
from services.health.app import MIGRATIONS
from services.health.service import DeviceInput

PG_URL = os.environ.get("ACUVIM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
DEGRADED_MULTIPLIER = 3.0
OFFLINE_MULTIPLIER = 5.0

# Per mille of devices silent for 5-10 intervals ($2, due offline) and for 3-5 intervals ($3,
# due degraded); the rest were heard within one interval. The silent ones are spread over the
# table's pages (n * a prime), as they would be in a real fleet, not packed together.
FILL = """
INSERT INTO devices (device_id, status, heartbeat_interval, last_seen, last_heartbeat,
                     firmware_version, connection_type, signal_strength)
SELECT 'BENCH-' || n, 'online', 60, t, t, '1.' || (n % 5) || '.0',
       CASE WHEN n % 3 = 0 THEN 'gsm' ELSE 'wifi' END, -50 - (n % 70)
FROM generate_series(1, $1) n,
     LATERAL (SELECT now() - make_interval(secs => CASE
         WHEN (n * 7919) % 1000 < $2 THEN 60 * (5.5 + random() * 4)
         WHEN (n * 7919) % 1000 < $2 + $3 THEN 60 * (3.2 + random() * 1.6)
         ELSE random() * 60 END) AS t) s"""

# (label, per mille due offline, per mille due degraded); the naive loop compares with the last.
SCENARIOS = [("steady state", 0, 0), ("2 % changing", 10, 10), ("outage: 20 % changing", 100, 100)]
NAIVE_READ = "SELECT device_id, status, heartbeat_interval, last_seen FROM devices"
NAIVE_UPDATE = "UPDATE devices SET status = $2, status_changed_at = now() WHERE device_id = $1"


async def fresh_database(name: str) -> asyncpg.Pool:
    pool = await db.create_pool(f"{PG_URL}/{name}", "health", max_size=4)
    await db.migrate(pool, "health", MIGRATIONS)
    return pool


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(f"{PG_URL}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def fill(pool: asyncpg.Pool, devices: int, offline_per_mille: int,
               degraded_per_mille: int) -> None:
    await pool.execute("TRUNCATE devices, alerts, outbox")
    await pool.execute(FILL, devices, offline_per_mille, degraded_per_mille)
    await pool.execute("ANALYZE devices")


async def no_publish(subject: str, fact: Any, msg_id: str | None) -> None:
    return None


async def set_based(pool: asyncpg.Pool, devices: int, offline_per_mille: int,
                    degraded_per_mille: int) -> tuple[float, int, int]:
    """(time of one sweep until committed, devices changed, facts stored in the outbox)."""
    await fill(pool, devices, offline_per_mille, degraded_per_mille)
    # No relay: the facts wait in the outbox, where they are counted.
    sweeper = DeviceInput(pool, Subjects("bench"), no_publish,
                          degraded_multiplier=DEGRADED_MULTIPLIER,
                          offline_multiplier=OFFLINE_MULTIPLIER)
    started = time.perf_counter()
    changed = await sweeper.sweep()
    took_s = time.perf_counter() - started
    return took_s, changed, int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def naive(pool: asyncpg.Pool, devices: int) -> tuple[float, int]:
    await fill(pool, devices, 10, 10)
    started = time.perf_counter()
    changed = 0
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        for row in await conn.fetch(NAIVE_READ):
            silent_s = (now - row["last_seen"]).total_seconds()
            interval = row["heartbeat_interval"]
            if silent_s > OFFLINE_MULTIPLIER * interval:
                new = "offline"
            elif silent_s > DEGRADED_MULTIPLIER * interval:
                new = "degraded"
            else:
                continue
            if new != row["status"]:
                await conn.execute(NAIVE_UPDATE, row["device_id"], new)
                changed += 1
    return time.perf_counter() - started, changed


async def main(devices: int, naive_devices: int, runs: int) -> None:
    name = f"acuvim_bench_{uuid.uuid4().hex[:8]}"
    pool = await fresh_database(name)
    try:
        for label, offline, degraded in SCENARIOS:
            took = []
            for _ in range(runs):
                took_s, changed, facts = await set_based(pool, devices, offline, degraded)
                took.append(took_s * 1000)
            print(f"set-based sweep, {label}: {devices:,} devices, {changed:,} changed, "
                  f"{facts:,} facts stored: median {statistics.median(took):.0f} ms, slowest "
                  f"{max(took):.0f} ms of {runs} (target < 1000 ms)")
        naive_s, naive_changed = await naive(pool, naive_devices)
        per_device_s = naive_s / naive_devices
        print(f"naive loop, 2 % changing: {naive_devices:,} devices, {naive_changed:,} changed, "
              f"{naive_s * 1000:.0f} ms -> {per_device_s * devices:.1f} s extrapolated to "
              f"{devices:,} devices")
    finally:
        await pool.close()
        await drop_database(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.devices, args.naive, args.runs))
