"""Devices sending garbage at volume: 10,000 bad messages of every kind mixed with good
traffic. Every good reading is stored, nothing bad is, ingest stays up and counts each drop;
a device is never credited with what was published on another device's topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.ingest.test_bridge import BAD_INPUT
from tests.support.console import Console, free_port
from tests.support.mqtt import mqtt_client
from tests.support.waiting import eventually

BAD_MESSAGES = 10_000
GOOD_DEVICES = 20
GOOD_PER_DEVICE = 50
CONCURRENT_PUBLISHES = 50
HUGE_KIND_LIMIT = 5  # the 300 KiB kind: a few suffice (volume is the other kinds' job)
# Text PostgreSQL cannot store (U+0000): must never hold up the good readings around it.
NUL_KINDS: list[tuple[str, Any]] = [
    ("{p}/ACV-X/telemetry", {"data": {"note": "a\u0000b", "v1": 1.0}}),
    ("{p}/ACV-X/heartbeat", {"ts": 1, "reset_reason": "\u0000"}),
]


@pytest.fixture(scope="module")
async def pipeline(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    c = Console.for_session(Path(tmp_path_factory.mktemp("volume")))
    metrics_port = free_port()
    c.start("telemetry", "health")
    c.start("ingest", ACUVIM_METRICS_PORT=str(metrics_port))
    c.extra_env["INGEST_METRICS_PORT"] = str(metrics_port)
    try:
        for name, text in (("telemetry", "telemetry ready"), ("ingest", "mqtt connected")):
            async def seen(name: str = name, text: str = text) -> bool:
                return text in c.log(name)

            await eventually(seen, timeout_s=30, what=f"{name}: {text}")
        yield c
    finally:
        c.kill("ingest")
        c.stop_all()
        await c.delete_streams()
        await c.drop_database()


async def rejected_total(c: Console) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{c.extra_env['INGEST_METRICS_PORT']}/metrics")
                ).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("acuvim_ingest_rejected_total{"))


async def stored_rows(c: Console, devices: list[str]) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(c.database_url)
    try:
        rows = await conn.fetch("SELECT device_id, (data->>'seq')::int AS seq FROM "
                                "telemetry.telemetry_records WHERE device_id = ANY($1::text[])",
                                devices)
    finally:
        await conn.close()
    return [(r["device_id"], r["seq"]) for r in rows]


def bad_messages(prefix: str, bad_device: str) -> list[tuple[str, bytes]]:
    kinds = [(topic.format(p=prefix, long="A" * 40).replace("ACV-X", bad_device), payload)
             for topic, payload in BAD_INPUT + NUL_KINDS]
    out: list[tuple[str, bytes]] = []
    huge_sent = 0
    while len(out) < BAD_MESSAGES:
        for topic, payload in kinds:
            body = payload if isinstance(payload, bytes) else (
                payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
            if len(body) > 100_000:
                if huge_sent >= HUGE_KIND_LIMIT:
                    continue
                huge_sent += 1
            out.append((topic, body))
    return out[:BAD_MESSAGES]


async def test_ten_thousand_bad_messages_leave_good_traffic_whole(pipeline: Console) -> None:
    prefix, tag = pipeline.topic_prefix, uuid.uuid4().hex[:6].upper()
    bad_device = f"ACV-BAD{tag}"
    good_devices = [f"ACV-G{tag}{i:04d}" for i in range(GOOD_DEVICES)]
    start_ts = int(time.time()) - 3600
    good = [(f"{prefix}/{d}/telemetry",
             json.dumps({"ts": start_ts + n, "data": {"seq": n, "v1": float(n)}}).encode())
            for n in range(GOOD_PER_DEVICE) for d in good_devices]
    bad = bad_messages(prefix, bad_device)
    # Interleave: a good reading after every few bad ones.
    stride = max(1, len(bad) // len(good))
    mixed: list[tuple[str, bytes]] = []
    for i, message in enumerate(good):
        mixed += [*bad[i * stride:(i + 1) * stride], message]
    mixed += bad[len(good) * stride:]
    before = await rejected_total(pipeline)
    async with mqtt_client(max_queued_outgoing_messages=None) as client:
        for i in range(0, len(mixed), CONCURRENT_PUBLISHES):
            await asyncio.gather(*(client.publish(t, b, qos=1)
                                   for t, b in mixed[i:i + CONCURRENT_PUBLISHES]))
    expected = {(d, n) for n in range(GOOD_PER_DEVICE) for d in good_devices}

    async def all_good_stored() -> bool:
        rows = await stored_rows(pipeline, good_devices)
        assert set(rows) == expected, f"{len(set(rows))} of {len(expected)} stored"
        assert len(rows) == len(expected)
        return True

    await eventually(all_good_stored, timeout_s=90, interval_s=1, what="good readings stored")
    assert await stored_rows(pipeline, [bad_device, "ACV-OTHER"]) == []
    assert pipeline.processes["ingest"][0].poll() is None

    # Ingest drops and counts every bad kind but the NUL ones (well-formed for it): the services
    # behind it refuse those (dead letter) without holding up anything else.
    nul_bodies = {json.dumps(payload).encode() for _, payload in NUL_KINDS}
    counted_by_ingest = sum(body not in nul_bodies for _, body in bad)

    async def counted() -> bool:
        delta = await rejected_total(pipeline) - before
        assert delta >= counted_by_ingest, f"{delta} of {counted_by_ingest} counted"
        return True

    await eventually(counted, timeout_s=30, what="bad messages counted")


async def test_a_device_is_never_credited_with_another_devices_topic(pipeline: Console) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    victim, intruder = f"ACV-V{tag}", f"ACV-I{tag}"
    ts = int(time.time()) - 120
    async with mqtt_client() as client:
        # The intruder publishes on the victim's topic, naming itself or the victim.
        for n, claimed in enumerate((intruder, victim)):
            await client.publish(f"{pipeline.topic_prefix}/{victim}/telemetry", json.dumps({
                "device_id": claimed, "ts": ts + n, "data": {"seq": n}}), qos=1)
        await client.publish(f"{pipeline.topic_prefix}/{intruder}/telemetry", json.dumps({
            "ts": ts, "data": {"seq": 99}}), qos=1)

    async def intruder_stored() -> bool:
        return await stored_rows(pipeline, [intruder]) == [(intruder, 99)]

    await eventually(intruder_stored, timeout_s=15, what="the intruder's own reading")
    # On the victim's topic only a payload naming the victim (or none) is the victim's.
    assert await stored_rows(pipeline, [victim]) == [(victim, 1)]
