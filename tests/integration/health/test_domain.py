"""The health domain against a real PostgreSQL (no bus): replicas racing, redeliveries (the
sweep: test_sweep.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from libs.common.messages.device import DeviceAlert, DeviceRegistration, Heartbeat
from libs.common.subjects import Subjects
from services.health.app import MIGRATIONS
from services.health.service import DeviceInput
from tests.support.database import migrated_pool


class Recorder:
    def __init__(self) -> None:
        self.facts: list[tuple[str, Any, str | None]] = []

    async def __call__(self, subject: str, fact: Any, msg_id: str | None) -> None:
        self.facts.append((subject, fact, msg_id))

    def on(self, part: str) -> list[Any]:
        return [fact for subject, fact, _ in self.facts if f".{part}." in subject]


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("health", MIGRATIONS) as created:
        yield created


def replica(pool: asyncpg.Pool, recorder: Recorder) -> DeviceInput:
    return DeviceInput(pool, Subjects("unit"), recorder, degraded_multiplier=3,
                       offline_multiplier=5)


def alert(device_id: str, ts: float, **fields: Any) -> DeviceAlert:
    return DeviceAlert(device_id=device_id, received_at=ts, ts=ts, alert_type="overvoltage",
                       severity="warning", value=260.0, **fields)


async def test_racing_replicas_open_one_alert(pool: asyncpg.Pool, device_id: str) -> None:
    recorder = Recorder()
    one, two = replica(pool, recorder), replica(pool, recorder)
    now = time.time()
    await asyncio.gather(one.device_alert(alert(device_id, now), "in1"),
                         two.device_alert(alert(device_id, now + 1), "in2"))
    rows = await pool.fetch("SELECT occurrence_count FROM alerts WHERE device_id = $1 "
                            "AND resolved_at IS NULL", device_id)
    assert [r["occurrence_count"] for r in rows] == [2]
    assert len(recorder.on("created")) == 1 and len(recorder.on("updated")) == 1


async def test_redelivered_alert_counts_once(pool: asyncpg.Pool, device_id: str) -> None:
    recorder = Recorder()
    devices = replica(pool, recorder)
    message = alert(device_id, time.time())
    await devices.device_alert(message, "in7")
    await devices.device_alert(message, "in7")
    count = await pool.fetchval("SELECT occurrence_count FROM alerts WHERE device_id = $1",
                                device_id)
    assert count == 1 and len(recorder.on("updated")) == 0


async def test_redelivered_heartbeat_changes_nothing(pool: asyncpg.Pool, device_id: str) -> None:
    recorder = Recorder()
    devices = replica(pool, recorder)
    await devices.register(DeviceRegistration(device_id=device_id, received_at=time.time()),
                           "in10")
    now = time.time()
    beat = Heartbeat(device_id=device_id, received_at=now, ts=now, free_heap=1000)
    await devices.heartbeat(beat, "in11")
    await devices.heartbeat(beat, "in11")
    assert len(recorder.on("status")) == 1
    assert len([f for s, f, _ in recorder.facts if ".heartbeat." in s]) == 1
    assert len(recorder.on("created")) == 1  # low memory, once
    older = Heartbeat(device_id=device_id, received_at=now - 30, ts=now - 30, boot_count=99)
    await devices.heartbeat(older, "in12")
    row = await pool.fetchrow("SELECT boot_count, last_heartbeat FROM devices "
                              "WHERE device_id = $1", device_id)
    assert row is not None
    assert row["boot_count"] != 99 and row["last_heartbeat"].timestamp() == pytest.approx(now)

