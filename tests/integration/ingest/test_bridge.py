"""Ingest against real Mosquitto and NATS: device messages become bus messages, bad ones are
dropped and counted, commands reach the device's cmd topic."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.common.codec import decode, encode
from libs.common.messages.device import (
    CommandAnswer,
    DeviceAlert,
    DeviceCommand,
    DeviceRegistration,
    Heartbeat,
    StatusReport,
    TelemetryBundle,
)
from libs.common.subjects import Subjects
from tests.support.console import NATS_URL, Console, free_port
from tests.support.mqtt import mqtt_client, publish
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
async def ingest(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    c = Console.for_session(Path(tmp_path_factory.mktemp("ingest")))
    c.extra_env["ACUVIM_METRICS_PORT"] = str(free_port())
    # The test's consumer must exist before ingest publishes (the stream keeps what has interest).
    nc = await nats.connect(NATS_URL)
    from libs.common.bus import declare_streams

    await declare_streams(nc.jetstream(), Subjects(c.bus_root))
    await nc.close()
    c.start("ingest")
    try:
        await c.wait_log("ingest", "mqtt connected")
        yield c
    finally:
        c.stop_all()
        await c.delete_streams()


class BusReader:
    def __init__(self, c: Console, device: str = "") -> None:
        self.subjects = Subjects(c.bus_root)
        self.device = device  # registrations of any other device are skipped

    async def __aenter__(self) -> BusReader:
        self.nc = await nats.connect(NATS_URL)
        js = self.nc.jetstream()
        name = "test-" + uuid.uuid4().hex[:8]
        await js.add_consumer(self.subjects.device_in_stream, ConsumerConfig(
            durable_name=name, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW,
            filter_subject=self.subjects.device_in_all, inactive_threshold=60))
        self.sub = await js.pull_subscribe_bind(durable=name, stream=self.subjects.device_in_stream)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.nc.close()

    async def read(self, count: int, timeout_s: float = 10) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            try:
                msgs = await self.sub.fetch(count - len(got), timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            for msg in msgs:
                await msg.ack()
                if (msg.subject.startswith(self.subjects.register(""))
                        and msg.subject != self.subjects.register(self.device)):
                    continue  # devices/register has no prefix: other test sessions' devices
                got.append((msg.subject, msg.data))
        return got


def dev() -> str:
    return "ACV-" + uuid.uuid4().hex[:12].upper()


async def test_every_kind_of_device_message_reaches_its_subject(ingest: Console) -> None:
    p, d = ingest.topic_prefix, dev()
    async with BusReader(ingest, device=d) as bus:
        await publish("devices/register", {"device_id": d, "hardware": "TTGO T-Call v1.4",
                                           "capabilities": ["wifi", "gsm"]})
        await publish(f"{p}/{d}/heartbeat", {"ts": 1764842400, "signal_strength": -71,
                                             "reset_reason": "brownout", "boot_count": 3},
                      qos=0)
        await publish(f"{p}/{d}/status", "offline")
        await publish(f"{p}/{d}/alerts", {"ts": 1764842400, "alert_type": "overvoltage",
                                          "severity": "critical", "value": 262.1})
        await publish(f"{p}/{d}/resp", {"request_id": "abc", "status": "success",
                                        "data": {"pong": True}})
        await publish(f"{p}/{d}/telemetry", {"ts": 0, "data": {"v1": 230.4, "meter_status": "ok",
                                                               "v2": None}})
        got = dict(await bus.read(6))
    s = bus.subjects
    reg = decode(got[s.register(d)], DeviceRegistration)
    assert reg.hardware == "TTGO T-Call v1.4" and reg.heartbeat_interval == 60
    hb = decode(got[s.heartbeat(d)], Heartbeat)
    assert hb.signal_strength == -71 and hb.ts == 1764842400 and not hb.clock_unsynced
    assert decode(got[s.status(d)], StatusReport).status == "offline"
    assert decode(got[s.alert(d)], DeviceAlert).severity == "critical"
    assert decode(got[s.answer(d)], CommandAnswer).data == {"pong": True}
    bundle = decode(got[s.telemetry_in], TelemetryBundle)
    (message,) = bundle.messages
    assert message.device_id == d and message.source == "live"
    (reading,) = message.readings
    assert reading.clock_unsynced and reading.data == {"v1": 230.4, "meter_status": "ok",
                                                       "v2": None}


async def test_replay_keeps_good_records_and_counts_bad_ones(ingest: Console) -> None:
    p, d = ingest.topic_prefix, dev()
    records: list[Any] = [{"ts": 1764842400 + 60 * i, "data": {"v1": 230.0 + i}}
                          for i in range(5)]
    records.insert(2, {"ts": 1764842999, "data": {"v1": {"nested": 1}}})
    records.insert(4, "not a record")
    async with BusReader(ingest) as bus:
        await publish(f"{p}/{d}/telemetry", {"source": "sd", "connection": "gsm",
                                             "records": records})
        ((_, data),) = await bus.read(1)
    (message,) = decode(data, TelemetryBundle).messages
    assert message.source == "sd" and message.connection == "gsm"
    assert [r.data["v1"] for r in message.readings] == [230.0, 231.0, 232.0, 233.0, 234.0]
    assert message.dropped == 2


# Topics outside the device contract are not even subscribed to: never seen, never stored.
UNSUBSCRIBED: list[tuple[str, Any]] = [
    ("{p}/ACV-X/unknown", {"data": {"v1": 1}}),
    ("{p}/ACV-X/telemetry/extra", {"data": {"v1": 1}}),
]
BAD_INPUT: list[tuple[str, Any]] = [
    ("{p}/bad.id/telemetry", {"data": {"v1": 1}}),
    ("{p}/bad id/heartbeat", {"ts": 1}),
    ("{p}/ACV-{long}/heartbeat", {"ts": 1}),
    ("{p}/ACV-X/telemetry", "not json"),
    ("{p}/ACV-X/telemetry", {"data": {"v1": {"nested": True}}}),
    ("{p}/ACV-X/telemetry", {"records": "nope"}),
    ("{p}/ACV-X/telemetry", {}),
    ("{p}/ACV-X/heartbeat", {"signal_strength": "strong"}),
    ("{p}/ACV-X/heartbeat", [1, 2, 3]),
    ("{p}/ACV-X/alerts", {"severity": "warning"}),
    ("{p}/ACV-X/alerts", {"alert_type": "x", "severity": "apocalyptic"}),
    ("{p}/ACV-X/resp", {"status": "success"}),
    ("{p}/ACV-X/resp", {"request_id": "r1", "status": "done"}),
    ("{p}/ACV-X/status", "sleepy"),
    ("{p}/ACV-X/telemetry", {"device_id": "ACV-OTHER", "data": {"v1": 1}}),
    ("devices/register", {"hardware": "no id"}),
    ("devices/register", {"device_id": "bad id with spaces"}),
    ("devices/register", {"device_id": "ACV-X", "heartbeat_interval": -5}),
    ("{p}/ACV-X/telemetry", b"\xff\xfe\x00garbage"),
    ("{p}/ACV-X/telemetry", {"data": {"v1": 1}, "pad": "x" * (300 * 1024)}),
]


async def test_bad_input_is_dropped_counted_and_good_traffic_flows(ingest: Console) -> None:
    p, d = ingest.topic_prefix, dev()
    before = await _rejected_total(ingest)
    async with BusReader(ingest) as bus:
        async with mqtt_client() as client:
            for topic, payload in UNSUBSCRIBED + BAD_INPUT:
                body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
                await client.publish(topic.format(p=p, long="A" * 40), body, qos=1)
            await client.publish(f"{p}/{d}/telemetry", json.dumps({"data": {"v1": 1.5}}), qos=1)
        got = await bus.read(1, timeout_s=10)
        assert [s for s, _ in got] == [bus.subjects.telemetry_in]
        assert decode(got[0][1], TelemetryBundle).messages[0].device_id == d
        assert await bus.read(1, timeout_s=1) == []  # nothing bad slipped through

    async def all_counted() -> bool:
        return await _rejected_total(ingest) - before >= len(BAD_INPUT)

    # At least: devices/register has no prefix, so other consoles' bad registrations count too.
    await eventually(all_counted, timeout_s=5, what="every bad message counted")
    assert ingest.processes["ingest"][0].poll() is None  # still running


async def test_commands_reach_the_device_cmd_topic(ingest: Console) -> None:
    d = dev()
    async with mqtt_client() as device:
        await device.subscribe(f"{ingest.topic_prefix}/{d}/cmd", qos=1)
        nc = await nats.connect(NATS_URL)
        command = DeviceCommand(device_id=d, request_id="r-123", command="ping")
        await nc.jetstream().publish(Subjects(ingest.bus_root).command_out(d), encode(command))
        await nc.close()
        async with asyncio.timeout(10):
            message = await anext(aiter(device.messages))
    assert json.loads(message.payload) == {"request_id": "r-123", "command": "ping", "params": {}}
    assert message.qos == 1


async def _rejected_total(c: Console) -> float:
    port = c.extra_env["ACUVIM_METRICS_PORT"]
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("acuvim_ingest_rejected_total{"))
