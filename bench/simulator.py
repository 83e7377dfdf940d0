"""Simulated devices per core: how much CPU the fleet simulator spends per device.

    .venv/bin/python bench/simulator.py [--devices 1000] [--duration-s 30] [--mode shared]

Runs a fleet of simulated devices against this machine's Mosquitto (a topic prefix of its
own, nothing subscribes), one reading and one heartbeat per device every `--interval-s`, and
reports the process's CPU seconds over the run, the share of one core, messages sent and
resident memory; the target is 1,000 devices on one core (share < 100 %). Baseline in the same
run: the same number of bare aiomqtt publishes of a fixed payload (the transport's own cost).
Prints a table and writes bench/results/simulator.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import Fleet, FleetConfig  # noqa: E402
from tests.support.console import MQTT_URL  # noqa: E402
from tests.support.mqtt import mqtt_client  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "simulator.json"


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_fleet(devices: int, duration_s: float, interval_s: float,
                    mode: str) -> dict[str, Any]:
    config = FleetConfig(devices=devices, mqtt_url=MQTT_URL,
                         topic_prefix="bench" + uuid.uuid4().hex[:8], seed=1,
                         telemetry_interval_s=interval_s, heartbeat_interval_s=interval_s,
                         connection_mode=mode,  # type: ignore[arg-type]
                         flaky_devices=0, start_spread_s=min(5.0, interval_s))
    started_cpu, started = cpu_s(), time.monotonic()
    async with Fleet(config) as fleet:
        await asyncio.sleep(duration_s)
        totals = fleet.totals()
    wall_s = time.monotonic() - started
    used = cpu_s() - started_cpu
    sent = sum(v for k, v in totals.items() if k != "online")
    return {"devices": devices, "mode": mode, "wall_s": round(wall_s, 1),
            "cpu_s": round(used, 2), "core_share": round(used / wall_s, 3), "messages": sent,
            "online_at_end": totals.get("online", 0),
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


async def run_bare(messages: int) -> dict[str, Any]:
    payload = json.dumps({"ts": 1764842400, "data": {f"r{i}": 230.0 + i for i in range(50)}})
    started_cpu, started = cpu_s(), time.monotonic()
    async with mqtt_client() as client:
        for _ in range(messages):
            await client.publish("bench/bare/telemetry", payload, qos=1)
    return {"messages": messages, "cpu_s": round(cpu_s() - started_cpu, 2),
            "wall_s": round(time.monotonic() - started, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--mode", choices=("shared", "per-device"), default="shared")
    args = parser.parse_args()
    fleet = await run_fleet(args.devices, args.duration_s, args.interval_s, args.mode)
    bare = await run_bare(fleet["messages"])
    per_message_us = 1e6 * fleet["cpu_s"] / max(1, fleet["messages"])
    bare_us = 1e6 * bare["cpu_s"] / max(1, bare["messages"])
    print(f"{'':28} {'fleet':>12} {'bare aiomqtt':>14}")
    print(f"{'devices':28} {fleet['devices']:>12} {'':>14}")
    print(f"{'messages sent':28} {fleet['messages']:>12} {bare['messages']:>14}")
    print(f"{'CPU seconds':28} {fleet['cpu_s']:>12} {bare['cpu_s']:>14}")
    print(f"{'CPU per message (µs)':28} {per_message_us:>12.0f} {bare_us:>14.0f}")
    print(f"{'share of one core':28} {fleet['core_share']:>12.1%} {'':>14}")
    print(f"{'online at the end':28} {fleet['online_at_end']:>12} {'':>14}")
    print(f"{'max RSS (MB)':28} {fleet['max_rss_mb']:>12} {'':>14}")
    print(f"target: {args.devices} devices on one core -> "
          f"{'met' if fleet['core_share'] < 1.0 else 'NOT met'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"fleet": fleet, "bare": bare}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
