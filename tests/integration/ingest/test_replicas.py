"""Two ingest replicas on Mosquitto's shared subscriptions: each message is handled once, and
when one replica dies the other carries on."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from libs.common.bus import declare_streams
from libs.common.codec import decode
from libs.common.messages.device import TelemetryBundle
from libs.common.subjects import Subjects
from tests.integration.ingest.test_bridge import BusReader
from tests.support.console import NATS_URL, Console
from tests.support.mqtt import mqtt_client
from tests.support.waiting import eventually

# Replicas split the traffic through the shared subscription (one ingest, the default, does not).
SHARED = {"ACUVIM_MQTT_SHARED_SUBSCRIPTIONS": "true"}


@pytest.fixture(scope="module")
async def two_ingests(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    c = Console.for_session(Path(tmp_path_factory.mktemp("ingest2")))
    nc = await nats.connect(NATS_URL)
    await declare_streams(nc.jetstream(), Subjects(c.bus_root))
    await nc.close()
    c.start("ingest", ACUVIM_INSTANCE_ID="replica-a", **SHARED)
    c.start("ingest", ACUVIM_INSTANCE_ID="replica-b", **SHARED)
    try:
        await c.wait_log("ingest", "mqtt connected", count=2)
        yield c
    finally:
        c.stop_all()
        await c.delete_streams()


async def publish_readings(c: Console, device: str, first: int, count: int) -> None:
    async with mqtt_client() as client:
        for i in range(first, first + count):
            body = json.dumps({"ts": 1764842400 + i, "data": {"n": i}})
            await client.publish(f"{c.topic_prefix}/{device}/telemetry", body, qos=1)


async def readings_seen(bus: BusReader, expected: int) -> list[int]:
    seen: list[int] = []
    for _, data in await bus.read(expected, timeout_s=1):
        for message in decode(data, TelemetryBundle).messages:
            seen += [int(r.data["n"]) for r in message.readings]  # type: ignore[arg-type]
    return seen


async def test_each_message_is_handled_once_by_the_pair(two_ingests: Console) -> None:
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    async with BusReader(two_ingests) as bus:
        await publish_readings(two_ingests, device, 0, 200)
        seen: list[int] = []

        async def all_seen() -> bool:
            seen.extend(await readings_seen(bus, 1))
            return len(set(seen)) >= 200

        await eventually(all_seen, timeout_s=20, interval_s=0.01, what="200 readings")
        seen.extend(await readings_seen(bus, 1))  # anything extra would show up now
    assert sorted(seen) == list(range(200))


async def test_a_killed_replica_loses_nothing(two_ingests: Console) -> None:
    """kill -9 one replica mid-traffic: the survivor handles its share at once; what the broker
    had queued for the dead replica's persistent session arrives when it is restarted under the
    same instance id (as the supervisor or the orchestrator does). Nothing is lost."""
    victim = two_ingests.processes["ingest"].pop(0)
    victim.kill()
    victim.wait()
    device = "ACV-" + uuid.uuid4().hex[:12].upper()
    async with BusReader(two_ingests) as bus:
        await publish_readings(two_ingests, device, 1000, 100)
        seen: list[int] = []

        async def some_seen() -> bool:
            seen.extend(await readings_seen(bus, 1))
            return len(seen) > 0

        await eventually(some_seen, timeout_s=15, interval_s=0.01, what="the survivor's share")
        two_ingests.start("ingest", ACUVIM_INSTANCE_ID="replica-a", **SHARED)

        async def all_seen() -> bool:
            seen.extend(await readings_seen(bus, 1))
            return set(range(1000, 1100)) <= set(seen)

        await eventually(all_seen, timeout_s=30, interval_s=0.01, what="100 readings")
    assert len(seen) == len(set(seen))  # and none twice
