"""Facts of the sweep and of operators' changes are not lost when NATS is down at commit time:
they wait in the outbox and leave when NATS is back. A NATS server of the test's own
(tests/faults/servers.py) is stopped and started again; PostgreSQL is the machine's."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from libs.common import bus
from libs.common.codec import decode
from libs.common.messages.events import AlertChanged, DeviceStatusChanged, DeviceUpdated
from libs.common.outbox import Outbox
from libs.common.subjects import Subjects
from services.health.app import MIGRATIONS
from services.health.fleet import Fleet
from services.health.schemas import DeviceUpdate
from services.health.service import DeviceInput
from tests.faults import servers
from tests.integration.common.test_outbox import stored
from tests.support.database import migrated_pool
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(servers.available() is not None,
                                reason=f"no NATS server binary: {servers.available()}")


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("health", MIGRATIONS) as created:
        yield created


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[servers.Server]:
    server = servers.nats_server(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def left(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def test_sweep_and_operator_facts_survive_nats_down_at_commit(
        pool: asyncpg.Pool, nats_server: servers.Server) -> None:
    nc = await bus.connect(nats_server.url, "health-outbox-test")
    try:
        js = nc.jetstream()
        subjects = Subjects("unit")
        await bus.declare_streams(js, subjects)
        outbox = Outbox(pool, js, publish_timeout_s=0.5)
        devices = DeviceInput(pool, subjects, functools.partial(bus.publish_fact, js),
                              degraded_multiplier=3, offline_multiplier=5, outbox=outbox)
        fleet = Fleet(pool, subjects, outbox)
        ids = sorted(f"ACV-{uuid.uuid4().hex[:12].upper()}" for _ in range(3))
        await pool.execute(
            "INSERT INTO devices (device_id, status, heartbeat_interval, last_seen) "
            "SELECT unnest($1::text[]), 'online', 1, now() - interval '10 seconds'", ids)

        await nats_server.stop()
        assert await devices.sweep() == 3
        await fleet.update_device(DeviceUpdate(device_id=ids[0], name="kept"))
        assert await outbox.relay_once() == 0  # NATS is down: nothing leaves, nothing lost
        states = await pool.fetch("SELECT status FROM devices WHERE device_id = ANY($1)", ids)
        assert {r["status"] for r in states} == {"offline"}
        assert await left(pool) == 3 + 3 + 1  # status changes, offline alerts, the update

        await nats_server.start()
        await eventually(lambda: relayed(outbox, pool), timeout_s=20, what="outbox relayed")
        facts = await stored(js, subjects.events_stream, f"{subjects.root}.>")
    finally:
        await nc.close()
    changed = [decode(f, DeviceStatusChanged) for f in facts[:3]]
    assert sorted(c.device_id for c in changed) == ids
    assert all((c.old_status, c.new_status, c.reason) == ("online", "offline", "sweep")
               for c in changed)
    alerts = [decode(f, AlertChanged) for f in facts[3:6]]
    assert sorted(a.device_id for a in alerts) == ids
    assert decode(facts[6], DeviceUpdated).device["name"] == "kept"
    assert len(facts) == 7


async def relayed(outbox: Outbox, pool: asyncpg.Pool) -> bool:
    await outbox.relay_once()
    return await left(pool) == 0
