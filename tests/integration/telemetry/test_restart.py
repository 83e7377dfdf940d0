"""kill -9 of the telemetry service mid-stream loses nothing and stores nothing twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.support.console import Console
from tests.support.mqtt import mqtt_client
from tests.support.waiting import eventually

DEVICES = 20
MESSAGES = 3000


@pytest.fixture(scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    c = Console.for_session(Path(tmp_path_factory.mktemp("restart")))
    c.start("telemetry")
    try:
        await wait_log(c, "telemetry", "telemetry ready")
        c.start("ingest")  # the durable consumer exists: nothing published is dropped
        await wait_log(c, "ingest", "mqtt connected")
        yield c
    finally:
        c.kill("ingest")  # its persistent session is this run's alone; no need to drain it
        c.stop_all()
        await c.delete_streams()
        await c.drop_database()


async def wait_log(c: Console, service: str, text: str, occurrences: int = 1) -> None:
    async def seen() -> bool:
        return c.log(service).count(text) >= occurrences

    await eventually(seen, timeout_s=30, what=f"{service}: {text}")


async def count_rows(c: Console) -> int:
    conn = await asyncpg.connect(c.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM telemetry.telemetry_records"))
    finally:
        await conn.close()


async def test_kill_and_restart_loses_nothing(pipeline: Console) -> None:
    start_ts = int(time.time()) - 3 * 86400
    expected: set[tuple[str, int]] = set()
    killed = asyncio.Event()

    async def publish_all() -> None:
        async with mqtt_client() as client:
            for i in range(MESSAGES):
                device = f"ACV-RESTART{i % DEVICES:04d}"
                ts = start_ts + (i // DEVICES) * 60
                expected.add((device, ts))
                body = json.dumps({"ts": ts, "data": {"v1": float(i), "seq": i}})
                await client.publish(f"{pipeline.topic_prefix}/{device}/telemetry", body, qos=1)
                if i % 10 == 0:  # some readings arrive twice (QoS 1 redelivery, SD replays)
                    await client.publish(f"{pipeline.topic_prefix}/{device}/telemetry",
                                         body, qos=1)
                if i == MESSAGES // 3:
                    killed.set()
                if i % 100 == 0:
                    await asyncio.sleep(0.02)  # a steady stream, not one burst

    publisher = asyncio.create_task(publish_all())
    await killed.wait()
    pipeline.kill("telemetry")
    pipeline.start("telemetry")
    await publisher
    await wait_log(pipeline, "telemetry", "telemetry ready", occurrences=2)

    async def all_stored() -> bool:
        assert await count_rows(pipeline) == len(expected)
        return True

    await eventually(all_stored, timeout_s=60, what="every reading stored")
    conn = await asyncpg.connect(pipeline.database_url)
    try:
        rows = await conn.fetch("SELECT device_id, extract(epoch FROM timestamp)::bigint AS ts"
                                " FROM telemetry.telemetry_records")
    finally:
        await conn.close()
    assert {(r["device_id"], r["ts"]) for r in rows} == expected
    assert len(expected) == MESSAGES
