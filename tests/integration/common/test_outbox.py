"""The transactional outbox against the real PostgreSQL and JetStream: rows leave in order,
once, with replicas relaying together; a failed publish keeps the rows for a later run."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from libs.common import bus
from libs.common.outbox import Outbox
from libs.common.subjects import Subjects
from services.commands.app import MIGRATIONS as COMMANDS_MIGRATIONS
from tests.support.database import migrated_pool


@pytest.fixture(scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[asyncpg.Pool]:
    """A schema with only the outbox table, made by a service's own migration."""
    folder = Path(tmp_path_factory.mktemp("outbox"))
    shutil.copy(COMMANDS_MIGRATIONS / "002_create_outbox.sql", folder / "001_create_outbox.sql")
    async with migrated_pool("relay", folder) as created:
        yield created


@pytest.fixture
async def subjects(nc: NATS) -> AsyncIterator[Subjects]:
    """A bus root of the test's own, with the console's streams declared (deleted after)."""
    made = Subjects("t" + uuid.uuid4().hex[:8])
    await bus.declare_streams(nc.jetstream(), made)
    try:
        yield made
    finally:
        await drop_streams(nc.jetstream(), made)


async def drop_streams(js: JetStreamContext, subjects: Subjects) -> None:
    for config in bus.stream_configs(subjects):
        with contextlib.suppress(nats.js.errors.NotFoundError):  # never declared
            await js.delete_stream(config.name or "")


async def stored(js: JetStreamContext, stream: str, subject: str) -> list[bytes]:
    """Every payload the stream holds on `subject` (a wildcard is fine), in stream order."""
    sub = await js.pull_subscribe(subject, stream=stream)
    found: list[bytes] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(500, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                return found
            for msg in msgs:
                found.append(msg.data)
                await msg.ack()  # else the consumer stops at 1,000 pending
    finally:
        await sub.unsubscribe()


async def add_rows(pool: asyncpg.Pool, rows: list[tuple[str, bytes, str]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await Outbox.add_many(conn, rows)


async def left(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def test_rows_leave_in_order_once(pool: asyncpg.Pool, nc: NATS,
                                        subjects: Subjects) -> None:
    js = nc.jetstream()
    subject = subjects.device_status_changed("ACV-ORDER")
    async with pool.acquire() as conn, conn.transaction():
        for i in range(5):
            await Outbox.add(conn, subject, f"{i}".encode(), f"order-{i}")
    assert await Outbox(pool, js).relay_once() == 5
    assert await left(pool) == 0
    assert await Outbox(pool, js).relay_once() == 0
    assert await stored(js, subjects.events_stream, subject) == [b"0", b"1", b"2", b"3", b"4"]


async def test_two_relays_racing_publish_each_row_once_in_order(
        pool: asyncpg.Pool, nc: NATS, subjects: Subjects) -> None:
    js = nc.jetstream()
    subject = subjects.device_status_changed("ACV-RACE")
    count = 1300  # several batches
    await add_rows(pool, [(subject, f"{i}".encode(), f"race-{i}") for i in range(count)])
    one, two = Outbox(pool, js, batch_rows=200), Outbox(pool, js, batch_rows=200)
    while await left(pool):
        await asyncio.gather(one.relay_once(), two.relay_once(), one.relay_once())
    assert await stored(js, subjects.events_stream, subject) == [
        f"{i}".encode() for i in range(count)]


async def test_a_failed_publish_keeps_the_rows_for_a_later_relay(
        pool: asyncpg.Pool, nc: NATS) -> None:
    js = nc.jetstream()
    later = Subjects("t" + uuid.uuid4().hex[:8])  # its streams do not exist yet
    subject = later.device_status_changed("ACV-LATER")
    await add_rows(pool, [(subject, f"{i}".encode(), f"later-{i}") for i in range(3)])
    relay = Outbox(pool, js, publish_timeout_s=0.5)
    assert await relay.relay_once() == 0
    assert await left(pool) == 3
    await bus.declare_streams(js, later)
    try:
        assert await relay.relay_once() == 3
        assert await left(pool) == 0
        assert await stored(js, later.events_stream, subject) == [b"0", b"1", b"2"]
    finally:
        await drop_streams(js, later)


async def test_a_crash_after_publish_before_delete_publishes_once(
        pool: asyncpg.Pool, nc: NATS, subjects: Subjects) -> None:
    """The relay died after JetStream acked but before its DELETE committed: the rows are
    published again, and the duplicate window drops them."""
    js = nc.jetstream()
    subject = subjects.device_status_changed("ACV-CRASH")
    rows = [(subject, f"{i}".encode(), f"crash-{i}") for i in range(3)]
    await add_rows(pool, rows)
    for row_subject, payload, msg_id in rows[:2]:
        await js.publish(row_subject, payload, headers={"Nats-Msg-Id": msg_id})
    assert await Outbox(pool, js).relay_once() == 3
    assert await stored(js, subjects.events_stream, subject) == [b"0", b"1", b"2"]


async def test_a_nudge_relays_without_waiting_for_the_period(
        pool: asyncpg.Pool, nc: NATS, subjects: Subjects) -> None:
    js = nc.jetstream()
    subject = subjects.device_status_changed("ACV-NUDGE")
    relay = Outbox(pool, js)
    await add_rows(pool, [(subject, b"a", "nudge-a")])
    relay.nudge()
    await add_rows(pool, [(subject, b"b", "nudge-b")])
    relay.nudge()  # while the first run may still go: it runs once more
    assert relay._nudged is not None
    await relay._nudged
    assert await left(pool) == 0
    assert await stored(js, subjects.events_stream, subject) == [b"a", b"b"]
