"""A command marked `sent` reaches DEVICE_OUT even when the process dies right after the commit
(before anything was published): the outbox row committed with the claim is relayed later, once.
The domain runs against the real PostgreSQL and JetStream; the "crash" is a relay never nudged."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import nats
import nats.errors
import pytest
from cryptography.fernet import Fernet
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from libs.common import bus
from libs.common.codec import decode
from libs.common.messages.device import DeviceCommand
from libs.common.messages.events import CommandUpdated
from libs.common.outbox import Outbox
from libs.common.subjects import Subjects
from services.commands.app import MIGRATIONS
from services.commands.handlers import BusChannels
from services.commands.repo import Repo
from services.commands.schemas import SendCommand
from services.commands.sealing import Sealer
from services.commands.service import CommandService, at
from tests.integration.common.test_outbox import drop_streams, stored
from tests.support.database import migrated_pool


async def taken(sub: JetStreamContext.PullSubscription) -> list[str]:
    """The request ids of the DeviceCommands a consumer made beforehand received."""
    found: list[str] = []
    while True:
        try:
            msgs = await sub.fetch(100, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            return found
        for msg in msgs:
            found.append(decode(msg.data, DeviceCommand).request_id)
            await msg.ack()


class DiedAfterCommit(BusChannels):
    """The process died after the commit: nothing relayed what it queued."""

    def flush(self) -> None:
        pass


class NoGroups:
    async def group_members(self, group_id: str) -> list[str]:
        return []


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool("commands", MIGRATIONS) as created:
        yield created


async def test_sent_command_reaches_device_out_once_after_a_crash(
        pool: asyncpg.Pool, nc: NATS, device_id: str) -> None:
    js = nc.jetstream()
    subjects = Subjects("t" + uuid.uuid4().hex[:8])
    await bus.declare_streams(js, subjects)
    try:
        # DEVICE_OUT keeps messages only for a consumer (ingest's): this one stands for it.
        device_out = await js.pull_subscribe(subjects.command_out(device_id),
                                             stream=subjects.device_out_stream)
        repo = Repo(pool)
        crashed = CommandService(repo, DiedAfterCommit(js, subjects, Outbox(pool, js)),
                                 NoGroups(), Sealer(Fernet.generate_key()), default_timeout_s=30)
        await repo.set_connectivity(device_id, True, at(time.time()))
        sent = await crashed.send(SendCommand(device_id=device_id, command="reboot"))
        assert sent["status"] == "sent"
        assert await taken(device_out) == []

        # Another replica (or the restarted process) relays; two at once publish it once.
        await asyncio.gather(Outbox(pool, js).relay_once(), Outbox(pool, js).relay_once())
        await Outbox(pool, js).relay_once()
        assert await taken(device_out) == [sent["request_id"]]
        facts = await stored(js, subjects.events_stream, subjects.command_updated(device_id))
        assert [decode(data, CommandUpdated).status for data in facts] == ["pending", "sent"]
    finally:
        await drop_streams(js, subjects)


async def test_a_command_timed_out_before_it_left_is_not_sent_late(
        pool: asyncpg.Pool, nc: NATS, device_id: str) -> None:
    js = nc.jetstream()
    subjects = Subjects("t" + uuid.uuid4().hex[:8])
    await bus.declare_streams(js, subjects)
    try:
        device_out = await js.pull_subscribe(subjects.command_out(device_id),
                                             stream=subjects.device_out_stream)
        repo = Repo(pool)
        crashed = CommandService(repo, DiedAfterCommit(js, subjects, Outbox(pool, js)),
                                 NoGroups(), Sealer(Fernet.generate_key()), default_timeout_s=1)
        await repo.set_connectivity(device_id, True, at(time.time()))
        sent = await crashed.send(SendCommand(device_id=device_id, command="ping"))
        await pool.execute("UPDATE commands SET deadline_at = now() - interval '1 second' "
                           "WHERE request_id = $1", sent["request_id"])
        await crashed.sweep()
        assert (await repo.get(sent["request_id"])).status == "timeout"  # type: ignore[union-attr]
        later = await crashed.send(SendCommand(device_id=device_id, command="ping"))
        await Outbox(pool, js).relay_once()
        assert await taken(device_out) == [later["request_id"]]
    finally:
        await drop_streams(js, subjects)
