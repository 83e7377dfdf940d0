"""What the benchmarks share: messages as a fleet sends them, process CPU, a committed-seq poller,
and a console in its own database, bus root and topic prefix."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from tests.support.console import Console

REGISTERS = [f"{p}{i}" for p in ("v", "i", "p", "q", "s", "pf", "thd_v", "thd_i")
             for i in (1, 2, 3)] + [
    "freq", "v12", "v23", "v31", "vavg", "iavg", "in", "psum", "qsum", "ssum", "pfavg",
    "ep_imp", "ep_exp", "eq_imp", "eq_exp", "es", "demand_p", "demand_q", "demand_s",
    "unbalance_v", "unbalance_i", "temp", "meter_status", "run_hours", "load_hours",
]


def reading(seq: int, registers: int = 50) -> dict[str, object]:
    rnd = random.Random(seq)
    data: dict[str, object] = {name: round(rnd.uniform(0, 500), 3)
                               for name in REGISTERS[:registers]}
    if "meter_status" in data:
        data["meter_status"] = "ok"
    data["seq"] = seq
    return data


def live_device(seq: int, devices: int) -> str:
    return f"ACV-B{seq % devices:011d}"


def live_messages(prefix: str, first_seq: int, count: int, devices: int,
                  base_ts: int) -> list[tuple[str, bytes]]:
    """One live reading per message, (device, ts) unique per seq."""
    out = []
    for seq in range(first_seq, first_seq + count):
        device = live_device(seq, devices)
        body = {"ts": base_ts + (seq // devices) * 60, "source": "live", "connection": "wifi",
                "data": reading(seq)}
        out.append((f"{prefix}/{device}/telemetry", json.dumps(body).encode()))
    return out


@dataclass
class Cpu:
    """CPU seconds of the processes that do the work, between `start` and `stop`."""

    pids: dict[str, list[int]]
    before: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, console: Console | None, *names: str) -> Cpu:
        pids: dict[str, list[int]] = {}
        if console is not None:
            pids = {n: [p.pid for p in console.processes.get(n, [])] for n in names}
        for proc in psutil.process_iter(["name"]):
            name = proc.info["name"] or ""
            for infra in ("postgres", "nats-server", "mosquitto"):
                if name.startswith(infra):
                    pids.setdefault(infra, []).append(proc.pid)
        pids["bench"] = [psutil.Process().pid]
        return cls(pids)

    def _read(self) -> dict[str, float]:
        out = {}
        for name, pids in self.pids.items():
            total = 0.0
            for pid in pids:
                try:
                    times = psutil.Process(pid).cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    continue
            out[name] = total
        return out

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> dict[str, float]:
        after = self._read()
        return {n: round(after[n] - self.before.get(n, 0.0), 2) for n in after}


class SeqPoller:
    """Polls the highest `seq` committed (latest_readings) to time commits without a scan."""

    def __init__(self, pool: asyncpg.Pool, device_like: str, interval_s: float = 0.02) -> None:
        """`device_like`: a LIKE pattern, or one device id (its primary key: the cheapest poll,
        for a throughput run that only waits for the last message)."""
        self.pool = pool
        self.device_like = device_like
        self.interval_s = interval_s
        self.seen: list[tuple[float, int]] = []

    async def current(self) -> int:
        # The poll runs on the machine under test: it must cost next to nothing.
        where = "device_id LIKE $1" if "%" in self.device_like else "device_id = $1"
        value = await self.pool.fetchval(
            "SELECT max((data->>'seq')::bigint) FROM telemetry.latest_readings"
            f" WHERE {where}", self.device_like)
        return int(value) if value is not None else -1

    async def until(self, seq: int, timeout_s: float = 300) -> float:
        """Poll until `seq` is committed; answer the time it was first seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.current()
            now = time.time()
            if not self.seen or value > self.seen[-1][1]:
                self.seen.append((now, value))
            if value >= seq:
                return now
            await asyncio.sleep(self.interval_s)
        raise TimeoutError(f"seq {seq} not committed in {timeout_s}s")

    def committed_at(self, seq: int) -> float | None:
        for when, value in self.seen:
            if value >= seq:
                return when
        return None


async def wait_log(console: Console, service: str, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in console.log(service):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service} never logged {text!r}:\n{console.log(service)[-2000:]}")
        await asyncio.sleep(0.1)


def bench_console(tmp: Path, **env: str) -> Console:
    return Console.for_session(tmp, ACUVIM_LOG_FORMAT="json", **env)
