"""A lean MQTT 3.1.1 QoS 1 publisher for benchmarks: pre-encoded PUBLISH packets on one socket.

The publisher must cost far less CPU than what it measures (paho would take a core to publish
10,000 messages/s on this machine). A broker drops QoS 1 messages beyond its per-subscriber
queue (Mosquitto: 1,000), so `send` keeps at most `window` messages ahead of the consumer's
progress (a callable the benchmark reads from the consumer).
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

CHUNK = 100  # packets per socket write
# The broker of the benchmark: the tests' (ACUVIM_TEST_MQTT_URL), else the machine's Mosquitto.
BROKER = urlsplit(os.environ.get("ACUVIM_TEST_MQTT_URL", "mqtt://127.0.0.1:1883"))
HOST, PORT = BROKER.hostname or "127.0.0.1", BROKER.port or 1883


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str) -> bytes:
    body = (struct.pack("!H", 4) + b"MQTT" + bytes([4, 0x02]) + struct.pack("!H", 60)
            + struct.pack("!H", len(client_id)) + client_id.encode())
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", packet_id) + payload
    return b"\x32" + _varint(len(body)) + body  # PUBLISH, QoS 1


def packets(messages: Sequence[tuple[str, bytes]]) -> list[bytes]:
    return [publish_packet(t, p, i % 65535 + 1) for i, (t, p) in enumerate(messages)]


async def send(packet_list: Sequence[bytes], progress: Callable[[], int], window: int,
               host: str = HOST, port: int = PORT,
               rate_per_s: float | None = None) -> list[float]:
    """Publish every packet (QoS 1, all PUBACKs awaited); answer each chunk's send time."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(connect_packet(f"bench-{time.monotonic_ns()}"))
    await writer.drain()
    await reader.readexactly(4)  # CONNACK
    acked = 0

    async def read_acks() -> None:
        nonlocal acked
        while acked < len(packet_list):
            data = await reader.readexactly(4)
            while data:  # PUBACKs are 4 bytes each
                acked += 1
                data = data[4:]

    acks = asyncio.create_task(read_acks())
    sent_at: list[float] = []
    started = time.perf_counter()
    for first in range(0, len(packet_list), CHUNK):
        while first - progress() > window:
            await asyncio.sleep(0.002)
        if rate_per_s:
            due = started + first / rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        sent_at.append(time.time())
        writer.write(b"".join(packet_list[first:first + CHUNK]))
        await writer.drain()
    await acks
    writer.close()
    return sent_at
