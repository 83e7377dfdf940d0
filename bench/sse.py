"""Server-sent events at scale: 1,000 clients on one gateway process.

    .venv/bin/python bench/sse.py [--clients 1000] [--events 20] [--interval-s 0.5]

Starts a gateway of its own (own bus root), connects the clients over raw sockets (each an
EventSource-like reader), then publishes facts into the EVENTS stream and measures, per event,
the time from publish until the last client received it; reports the gateway's resident memory
before and after the clients connected (targets: < 200 MB growth, < 1 s to reach all). Prints
a table and writes bench/results/sse.json. Everything shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from libs.common.codec import encode  # noqa: E402
from libs.common.messages.events import DeviceStatusChanged  # noqa: E402
from libs.common.subjects import Subjects  # noqa: E402
from tests.support.console import NATS_URL, Console  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sse.json"
CONNECT_BATCH = 100
TARGET_RSS_MB = 200.0
TARGET_FANOUT_S = 1.0


class Client:
    """One SSE connection; records when each event id arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self._tail = b""

    async def open(self, port: int, token: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        self.writer.write(f"GET /api/events?access_token={token} HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        await self.reader.readuntil(b"retry:")  # attached to the hub

    async def read(self) -> None:
        while chunk := await self.reader.read(65536):
            now = time.perf_counter()
            data = self._tail + chunk
            start = 0
            # Every frame starts on a new line (chunk sizes end with CRLF): "\nid: N\n".
            while (i := data.find(b"\nid: ", start)) >= 0:
                end = data.find(b"\n", i + 5)
                if end < 0:
                    break
                self.arrived.setdefault(int(data[i + 5:end]), now)
                start = end
            self._tail = data[start:][-64:]

    def close(self) -> None:
        self.writer.close()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def connect_all(console: Console, count: int) -> list[Client]:
    token = console.token("viewer", ttl_s=3600)
    clients = [Client() for _ in range(count)]
    for first in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(c.open(console.http_port, token)
                               for c in clients[first:first + CONNECT_BATCH]))
    return clients


async def publish_events(console: Console, events: int, interval_s: float) -> dict[int, float]:
    subjects = Subjects(console.bus_root)
    nc = await nats.connect(NATS_URL)
    published: dict[int, float] = {}
    try:
        js = nc.jetstream()
        for n in range(events):
            fact = DeviceStatusChanged(occurred_at=time.time(), device_id=f"BENCH-{n}",
                                       old_status="offline", new_status="online", reason="bench")
            started = time.perf_counter()
            ack = await js.publish(subjects.device_status_changed(f"BENCH-{n}"), encode(fact))
            published[ack.seq] = started
            await asyncio.sleep(interval_s)
    finally:
        await nc.close()
    return published


async def measure(console: Console, count: int, events: int, interval_s: float) -> dict[str, Any]:
    pid = console.processes["gateway"][0].pid
    warm = await connect_all(console, 1)  # the hub exists before the baseline
    rss_before = rss_mb(pid)
    connect_started = time.perf_counter()
    clients = await connect_all(console, count)
    connect_s = time.perf_counter() - connect_started
    rss_connected = rss_mb(pid)
    readers = [asyncio.create_task(c.read()) for c in clients]
    published = await publish_events(console, events, interval_s)
    await asyncio.sleep(1.0)  # the last event's stragglers
    rss_after = rss_mb(pid)
    for task in readers:
        task.cancel()
    for c in clients + warm:
        c.close()
    fanout = []
    for seq, started in published.items():
        times = [c.arrived.get(seq) for c in clients]
        got = [t for t in times if t is not None]
        fanout.append({"seq": seq, "reached": len(got),
                       "all_s": (max(got) - started) if len(got) == count else None,
                       "first_s": min(got) - started if got else None})
    complete = [f["all_s"] for f in fanout if f["all_s"] is not None]
    return {
        "clients": count, "events": events, "connect_s": round(connect_s, 2),
        "rss_before_mb": round(rss_before, 1), "rss_connected_mb": round(rss_connected, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb": round(max(rss_connected, rss_after) - rss_before, 1),
        "events_reaching_all": len(complete),
        "fanout_all_p50_s": round(statistics.median(complete), 3) if complete else None,
        "fanout_all_max_s": round(max(complete), 3) if complete else None,
        "fanout_first_p50_s": round(statistics.median(
            f["first_s"] for f in fanout if f["first_s"] is not None), 3),
        "targets": {"rss_growth_mb": TARGET_RSS_MB, "fanout_all_s": TARGET_FANOUT_S},
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        ("clients connected", f"{r['clients']} in {r['connect_s']} s"),
        ("gateway RSS before / connected / after", f"{r['rss_before_mb']} / "
         f"{r['rss_connected_mb']} / {r['rss_after_mb']} MB"),
        (f"RSS growth (target < {TARGET_RSS_MB:.0f} MB)", f"{r['rss_growth_mb']} MB"),
        ("events reaching every client", f"{r['events_reaching_all']} of {r['events']}"),
        (f"publish -> all clients p50 / max (target < {TARGET_FANOUT_S:.0f} s)",
         f"{r['fanout_all_p50_s']} / {r['fanout_all_max_s']} s"),
        ("publish -> first client p50", f"{r['fanout_first_p50_s']} s"),
    ]
    return "\n".join(f"{name:<52}{value:>28}" for name, value in rows)


async def main(count: int, events: int, interval_s: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * count + 1024)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        console = Console.for_session(Path(tmp), ACUVIM_LOG_FORMAT="json")
        console.start("gateway")
        try:
            await console.wait_healthy(services=(), timeout_s=30)
            results = await measure(console, count, events, interval_s)
        finally:
            console.stop_all()
            await console.delete_streams()
            await console.drop_database()
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval-s", type=float, default=0.5)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.events, args.interval_s))
