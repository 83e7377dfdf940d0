"""Device input survives a NATS restart whatever the consumers had acknowledged.

Under INTEREST retention NATS 2.9 recovered the durable consumers one by one after a restart,
and each dropped every message below its own ack floor that the consumers recovered so far no
longer needed: `health` (filter `in.*.*`) acks heartbeats past telemetry bundles it never sees,
so the bundles `telemetry` had not received yet were gone (5 of 200 readings lost in the NATS
restart test). The device streams now keep messages for their max_age (LIMITS).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from libs.common import bus
from libs.common.subjects import Subjects
from tests.faults.conftest import Servers

BUNDLES = 20
# The drop was a race (about one restart in five on NATS 2.9.10): several restarts.
RESTARTS = 12


async def _ignore(msgs: Sequence[Msg]) -> None:
    return None


def _consumer(nc: NATS, stream: str, durable: str, filter_subject: str) -> bus.DurableConsumer:
    return bus.DurableConsumer(nc.jetstream(), stream=stream, durable=durable,
                               filter_subjects=[filter_subject], handler=_ignore)


@pytest.fixture
async def subjects(fault_servers: Servers) -> AsyncIterator[Subjects]:
    s = Subjects(root=f"retain{uuid.uuid4().hex[:8]}")
    yield s
    nc = await nats.connect(fault_servers.nats.url)
    try:
        for stream in (s.device_in_stream, s.device_out_stream, s.events_stream, s.dead_stream):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def test_unreceived_telemetry_survives_restarts_after_health_acked_past_it(
        fault_servers: Servers, subjects: Subjects) -> None:
    s = subjects
    sent: list[bytes] = []
    for restart in range(RESTARTS):
        nc = await nats.connect(fault_servers.nats.url)
        js = nc.jetstream()
        await bus.declare_streams(js, s)
        # The services' consumers, as they filter (services/*/handlers.py).
        await _consumer(nc, s.device_in_stream, "commands", s.device_in_kind("resp")).ensure()
        health = await _consumer(nc, s.device_in_stream, "health",
                                 s.device_in_kind("*")).ensure()
        await _consumer(nc, s.device_in_stream, "telemetry", s.telemetry_in).ensure()
        for i in range(BUNDLES):
            sent.append(f"bundle {restart}.{i}".encode())
            await js.publish(s.telemetry_in, sent[-1])
        await js.publish(s.heartbeat("ACV-RETAIN"), b"{}")
        for msg in await health.fetch(1, timeout=5):  # its ack floor passes every bundle
            await msg.ack_sync()
        await nc.close()
        await fault_servers.nats.restart()

    nc = await nats.connect(fault_servers.nats.url)
    try:
        telemetry = await _consumer(nc, s.device_in_stream, "telemetry", s.telemetry_in).ensure()
        received = [m.data for m in await telemetry.fetch(len(sent), timeout=5)]
    finally:
        await nc.close()
    assert received == sent


async def test_a_command_published_before_its_consumer_exists_is_delivered(
        fault_servers: Servers, subjects: Subjects) -> None:
    s = subjects
    nc = await nats.connect(fault_servers.nats.url)
    try:
        js = nc.jetstream()
        await bus.declare_streams(js, s)
        await js.publish(s.command_out("ACV-RETAIN"), b"reboot")
        sender = await _consumer(nc, s.device_out_stream, "ingest-commands",
                                 s.device_out_all).ensure()
        assert [m.data for m in await sender.fetch(1, timeout=5)] == [b"reboot"]
    finally:
        await nc.close()
