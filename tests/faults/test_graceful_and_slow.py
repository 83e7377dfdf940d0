"""SIGTERM of every service mid-stream: each finishes what it holds and exits 0, acknowledging
nothing it has not stored (after the restart nothing is missing). A slow database (every
telemetry write delayed) backs traffic up in JetStream without any service's memory growing
without bound."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from tests.faults.traffic import assert_nothing_lost, scenario
from tests.support.console import ALL_SERVICES, Console

SLOW_PHASE_S = 20.0
WRITE_DELAY_S = 0.5
# What a service may add to its resident memory while the database is slow: its bounded
# batches and queues, not the backlog (that waits in JetStream).
RSS_GROWTH_LIMIT_BYTES = 80 * 1024 * 1024

SLOW_WRITES = """
CREATE OR REPLACE FUNCTION public.faults_slow_write() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep({delay_s}); RETURN NULL; END $$;
CREATE TRIGGER faults_slow_write BEFORE INSERT ON telemetry.telemetry_records
    FOR EACH STATEMENT EXECUTE FUNCTION public.faults_slow_write();
"""
FAST_WRITES = "DROP TRIGGER IF EXISTS faults_slow_write ON telemetry.telemetry_records"


async def test_sigterm_of_every_service_exits_0_and_loses_nothing(faulty: Console) -> None:
    codes: dict[str, list[int]] = {}

    async def terminate_each() -> float:
        for name in ALL_SERVICES:
            codes[name] = await asyncio.to_thread(faulty.stop, name)
            faulty.start(name)
            await asyncio.sleep(1.0)  # traffic reaches the restarted service before the next
        return time.monotonic()

    outcome = await scenario(faulty, "SIGTERM each service", terminate_each)
    outcome.extra["exit_codes"] = codes
    outcome.record()
    assert all(c == [0] for c in codes.values()), codes
    assert_nothing_lost(outcome)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def service_rss(console: Console) -> dict[str, int]:
    return {name: sum(rss_bytes(p.pid) for p in procs if p.poll() is None)
            for name, procs in console.processes.items()}


async def test_a_slow_database_does_not_grow_memory(faulty: Console) -> None:
    peaks: dict[str, int] = {}
    before: dict[str, int] = {}

    async def slow_database() -> float:
        before.update(service_rss(faulty))
        conn = await asyncpg.connect(faulty.database_url)
        try:
            await conn.execute(SLOW_WRITES.format(delay_s=WRITE_DELAY_S))
            ends = time.monotonic() + SLOW_PHASE_S
            while time.monotonic() < ends:
                for name, rss in service_rss(faulty).items():
                    peaks[name] = max(peaks.get(name, 0), rss)
                await asyncio.sleep(0.5)
        finally:
            await conn.execute(FAST_WRITES)
            await conn.close()
        return time.monotonic()

    outcome = await scenario(faulty, "slow database", slow_database, rate_per_s=100.0,
                             devices=20)
    growth = {name: peaks.get(name, 0) - before.get(name, 0) for name in before}
    outcome.extra["rss_before_mib"] = {k: round(v / 2**20) for k, v in before.items()}
    outcome.extra["rss_growth_mib"] = {k: round(v / 2**20, 1) for k, v in growth.items()}
    outcome.record()
    assert all(g < RSS_GROWTH_LIMIT_BYTES for g in growth.values()), growth
    assert_nothing_lost(outcome)
