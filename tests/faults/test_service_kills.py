"""kill -9 of each service mid-stream, then a restart; replicas of ingest and telemetry with
one of each killed: every reading the broker accepted is stored once."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.traffic import assert_nothing_lost, scenario, serves_again
from tests.support.console import ALL_SERVICES, Console

DOWN_S = 3.0  # how long the killed service stays down while traffic flows
# Ingest replicas split the traffic through the shared subscription (one ingest does not).
SHARED = {"ACUVIM_MQTT_SHARED_SUBSCRIPTIONS": "true"}


@pytest.mark.parametrize("service", ALL_SERVICES)
async def test_kill_9_and_restart(faulty: Console, service: str) -> None:
    async def kill_and_restart() -> float:
        faulty.kill(service)
        await asyncio.sleep(DOWN_S)
        faulty.start(service)
        return time.monotonic()

    outcome = await scenario(faulty, f"kill -9 {service}", kill_and_restart)
    assert_nothing_lost(outcome)


async def test_two_replicas_of_ingest_and_telemetry_with_one_of_each_killed(
        faulty: Console) -> None:
    faulty.stop("ingest")  # the console's single ingest, on plain subscriptions
    faulty.start("ingest", **SHARED)
    faulty.start("ingest", ACUVIM_INSTANCE_ID="replica-2", **SHARED)
    faulty.start("telemetry", ACUVIM_INSTANCE_ID="replica-2")

    async def kill_one_of_each() -> float:
        await asyncio.sleep(2.0)  # both replicas take a share of the traffic first
        for name in ("ingest", "telemetry"):
            first = faulty.processes[name].pop(0)
            first.kill()
            first.wait()
        down = time.monotonic()
        # The survivors serve at once (the console answers while one replica is dead) ...
        await serves_again(faulty, down, faulty.topic_prefix and "ACV-NONE")
        await asyncio.sleep(DOWN_S)
        # ... but Mosquitto keeps queueing the dead ingest's share of the shared subscription
        # in its persistent session: that share is stored when the replica comes back under
        # its instance id (as an orchestrator restarts it), not before.
        faulty.start("ingest", **SHARED)
        faulty.start("telemetry")
        return time.monotonic()

    try:
        outcome = await scenario(faulty, "kill -9 one of two replicas (ingest, telemetry)",
                                 kill_one_of_each)
    finally:
        for name in ("ingest", "telemetry"):
            faulty.stop(name)  # the autouse fixture starts one of each again
    assert_nothing_lost(outcome)
