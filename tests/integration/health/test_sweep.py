"""The sweep against a real PostgreSQL: states, offline alerts and their facts stored in the
outbox by one statement, once, whatever replicas sweep at the same time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from libs.common.codec import decode, to_builtins
from libs.common.messages.events import AlertChanged, DeviceStatusChanged
from libs.common.subjects import Subjects
from services.health import repo_alerts
from services.health.app import MIGRATIONS
from services.health.service import DeviceInput
from tests.support.database import migrated_pool

SUBJECTS = Subjects("unit")
ADD_DEVICES = """
INSERT INTO devices (device_id, status, heartbeat_interval, last_seen)
SELECT unnest($1::text[]), $2, 1, now() - make_interval(secs => $3)"""


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("health", MIGRATIONS) as created:
        yield created


def replica(pool: asyncpg.Pool) -> DeviceInput:
    """No relay: the facts stay in the outbox, where the tests read them."""
    async def unused(subject: str, fact: object, msg_id: str | None) -> None:
        raise AssertionError("the sweep publishes nothing itself")

    return DeviceInput(pool, SUBJECTS, unused, degraded_multiplier=3, offline_multiplier=5)


def fresh_ids(count: int) -> list[str]:
    return [f"SWEEP-{uuid.uuid4().hex[:10]}" for _ in range(count)]


async def facts_of(pool: asyncpg.Pool, ids: list[str]) -> list[asyncpg.Record]:
    """The outbox rows of these devices, in the order the relay publishes them."""
    return list(await pool.fetch(
        "SELECT subject, payload, msg_id FROM outbox "
        "WHERE split_part(subject, '.', -1) = ANY($1::text[]) ORDER BY id", ids))


async def test_sweep_stores_each_fact_as_the_service_would_encode_it(
        pool: asyncpg.Pool) -> None:
    [gone, quiet] = fresh_ids(2)
    await pool.execute(ADD_DEVICES, [gone], "online", 10.0)  # silent 10 intervals
    await pool.execute(ADD_DEVICES, [quiet], "online", 4.0)  # silent 4 intervals
    assert await replica(pool).sweep() >= 2
    rows = await facts_of(pool, [gone, quiet])
    subjects = [r["subject"] for r in rows]
    assert sorted(subjects[:2]) == sorted([SUBJECTS.device_status_changed(gone),
                                           SUBJECTS.device_status_changed(quiet)])
    assert subjects[2:] == [SUBJECTS.alert_created(gone)]  # status changes first
    assert len({r["msg_id"] for r in rows}) == 3

    changes = {c.device_id: c for c in
               (decode(r["payload"], DeviceStatusChanged) for r in rows[:2])}
    assert (changes[gone].old_status, changes[gone].new_status) == ("online", "offline")
    assert (changes[quiet].old_status, changes[quiet].new_status) == ("online", "degraded")
    assert {c.reason for c in changes.values()} == {"sweep"}
    opened = decode(rows[2]["payload"], AlertChanged)
    [alert] = await pool.fetch(f"SELECT {repo_alerts.ALERT_COLUMNS} FROM alerts "
                               "WHERE device_id = $1", gone)
    # Built in SQL, the alert is what msgspec gives for the row, times written alike.
    assert opened.alert == to_builtins(repo_alerts.alert_of(alert))
    assert opened.alert["alert_type"] == "device_offline" and opened.alert["source"] == "console"
    assert rows[2]["msg_id"] == f"alert:{alert['id']}:created"


async def test_device_with_an_open_offline_alert_gets_no_second_one(pool: asyncpg.Pool) -> None:
    [device] = fresh_ids(1)
    await pool.execute(ADD_DEVICES, [device], "degraded", 10.0)
    await pool.execute("INSERT INTO alerts (device_id, alert_type, severity, message, source) "
                       "VALUES ($1, 'device_offline', 'warning', 'earlier', 'console')", device)
    await replica(pool).sweep()
    assert [r["subject"] for r in await facts_of(pool, [device])] == [
        SUBJECTS.device_status_changed(device)]
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE device_id = $1", device) == 1


async def test_concurrent_sweeps_store_each_change_once(pool: asyncpg.Pool) -> None:
    ids = fresh_ids(50)
    await pool.execute(ADD_DEVICES, ids, "online", 10.0)
    await asyncio.gather(*(replica(pool).sweep() for _ in range(3)))
    rows = await facts_of(pool, ids)
    changes = [decode(r["payload"], DeviceStatusChanged) for r in rows
               if r["subject"].startswith(SUBJECTS.device_status_changed(""))]
    assert sorted(c.device_id for c in changes) == sorted(ids)
    assert all((c.old_status, c.new_status) == ("online", "offline") for c in changes)
    alerts = [decode(r["payload"], AlertChanged) for r in rows
              if r["subject"].startswith(SUBJECTS.alert_created(""))]
    assert sorted(a.device_id for a in alerts) == sorted(ids)
    assert len(rows) == 2 * len(ids)
    open_alerts = await pool.fetchval(
        "SELECT count(*) FROM alerts WHERE device_id = ANY($1::text[]) AND resolved_at IS NULL",
        ids)
    assert open_alerts == len(ids)


async def test_sweep_rolled_back_leaves_nothing_and_runs_again(pool: asyncpg.Pool) -> None:
    ids = fresh_ids(3)
    await pool.execute(ADD_DEVICES, ids, "online", 10.0)
    devices = replica(pool)
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await devices.sweep_in(conn)
            raise RuntimeError("crash before the commit")
    assert await facts_of(pool, ids) == []
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE device_id = ANY($1::text[])",
                               ids) == 0
    await devices.sweep()
    assert len(await facts_of(pool, ids)) == 2 * len(ids)
