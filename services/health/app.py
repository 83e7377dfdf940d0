"""health service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from libs.common import bus
from libs.common.lifecycle import run_service
from libs.common.outbox import RELAY_PERIOD_S, Outbox
from libs.common.runtime import Runtime
from libs.common.settings import Settings, check_degraded_before_offline
from services.health import handlers
from services.health.dashboard import Dashboard
from services.health.fleet import Fleet
from services.health.rollout_alerts import RolloutAlerts
from services.health.service import DeviceInput

MIGRATIONS = Path(__file__).parent / "migrations"
# The dashboard waits this long (s) for the telemetry service's rate before answering null.
TELEMETRY_STATS_TIMEOUT_S = 1.0


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    check_degraded_before_offline(settings)
    async with Runtime.open("health", settings, stopping, migrations=MIGRATIONS) as rt:
        publish = functools.partial(bus.publish_fact, rt.js)
        # Facts of the sweep and of operators' changes leave through the outbox; facts of
        # device input are published inside its transaction (the input is redelivered).
        outbox = Outbox(rt.db, rt.js)
        devices = DeviceInput(rt.db, rt.subjects, publish,
                              degraded_multiplier=settings.degraded_multiplier,
                              offline_multiplier=settings.offline_multiplier, outbox=outbox)

        async def telemetry_stats() -> Any:
            return await rt.rpc_client.call("telemetry", "stats",
                                            timeout_s=TELEMETRY_STATS_TIMEOUT_S)

        rollouts = RolloutAlerts(rt.db, rt.subjects, publish,
                                 handlers.rollout_reader(rt.rpc_client))
        handlers.register(rt, devices, Fleet(rt.db, rt.subjects, outbox),
                          Dashboard(rt.db, telemetry_stats), rollouts)
        rt.every("health-outbox", RELAY_PERIOD_S, outbox.relay_once)
        await rt.serve()


def run() -> None:
    run_service("health", main)
