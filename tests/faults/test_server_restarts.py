"""NATS, Mosquitto and PostgreSQL restart mid-stream, and PostgreSQL is gone for 30 s: the
services reconnect on their own, telemetry backs up in JetStream (or in the broker's session)
and catches up; every reading the broker accepted is stored once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tests.faults.conftest import Servers
from tests.faults.servers import Server
from tests.faults.traffic import assert_nothing_lost, scenario
from tests.support.console import Console

OUTAGE_S = 30.0


def restart(server: Server, down_s: float = 1.0) -> Callable[[], Awaitable[float]]:
    async def inject() -> float:
        await server.stop()  # graceful: Mosquitto writes its persistence file
        await asyncio.sleep(down_s)
        await server.start()  # same port, same data folder
        return time.monotonic()

    return inject


async def test_nats_restart(faulty: Console, fault_servers: Servers) -> None:
    outcome = await scenario(faulty, "restart NATS", restart(fault_servers.nats))
    assert_nothing_lost(outcome)


async def test_mosquitto_restart(faulty: Console, fault_servers: Servers) -> None:
    outcome = await scenario(faulty, "restart Mosquitto", restart(fault_servers.mqtt))
    assert_nothing_lost(outcome)


async def test_postgres_restart(faulty: Console, fault_servers: Servers) -> None:
    outcome = await scenario(faulty, "restart PostgreSQL", restart(fault_servers.postgres))
    assert_nothing_lost(outcome)


async def test_postgres_unreachable_for_30_s(faulty: Console, fault_servers: Servers) -> None:
    outcome = await scenario(faulty, "PostgreSQL down 30 s",
                             restart(fault_servers.postgres, down_s=OUTAGE_S))
    assert_nothing_lost(outcome)
