"""The two baselines, each in its own process (run with multiprocessing, spawn):

- bare: an aiomqtt subscriber that receives and parses the messages, nothing else;
- naive: the seed's design, one INSERT per message into a plain table, from an aiomqtt
  subscriber (autocommit, one statement at a time).
Each one counts handled messages in a shared counter (the publisher's flow control) and puts
(first_s, last_s, cpu_s) on the queue when it has seen `total` messages.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any

NAIVE_TABLE = """
CREATE TABLE IF NOT EXISTS naive_telemetry (
    id BIGSERIAL PRIMARY KEY, device_id VARCHAR(32) NOT NULL, timestamp TIMESTAMPTZ NOT NULL,
    data JSONB NOT NULL, source VARCHAR(8) DEFAULT 'live', connection VARCHAR(8),
    received_at TIMESTAMPTZ DEFAULT NOW());
CREATE INDEX IF NOT EXISTS naive_device_ts ON naive_telemetry (device_id, timestamp DESC);
CREATE INDEX IF NOT EXISTS naive_ts ON naive_telemetry (timestamp DESC);
"""
NAIVE_INSERT = ("INSERT INTO naive_telemetry (device_id, timestamp, data, source, connection)"
                " VALUES ($1, $2, $3::jsonb, $4, $5)")


def run(kind: str, prefix: str, total: int, counter: Synchronized[int], ready: Any,
        results: Queue[tuple[float, float, float]], db_url: str = "") -> None:
    import uvloop

    uvloop.run(_receive(kind, prefix, total, counter, ready, results, db_url))


async def _receive(kind: str, prefix: str, total: int, counter: Synchronized[int], ready: Any,
                   results: Queue[tuple[float, float, float]], db_url: str) -> None:
    import aiomqtt
    import asyncpg
    import msgspec

    conn = None
    if kind == "naive":
        conn = await asyncpg.connect(db_url)
        await conn.execute(NAIVE_TABLE)
    decode = msgspec.json.decode
    seen = 0
    first = 0.0
    from bench.support.mqttload import HOST, PORT

    async with aiomqtt.Client(HOST, PORT, identifier=f"bench-{kind}-{prefix}") as client:
        await client.subscribe(f"{prefix}/+/telemetry", qos=1)
        ready.set()
        async for message in client.messages:
            if not seen:
                first = time.perf_counter()
            body = decode(message.payload)
            if conn is not None:
                device = message.topic.value.split("/")[1]
                ts = datetime.fromtimestamp(body["ts"], UTC)
                await conn.execute(NAIVE_INSERT, device, ts, msgspec.json.encode(
                    body["data"]).decode(), body.get("source", "live"), body.get("connection"))
            seen += 1
            counter.value = seen
            if seen >= total:
                break
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((first, time.perf_counter(), usage.ru_utime + usage.ru_stime))
    if conn is not None:
        await conn.close()
