"""telemetry service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.telemetry import handlers
from services.telemetry.partitions import Partitions
from services.telemetry.repo import Repo
from services.telemetry.service import TelemetryService

MIGRATIONS = Path(__file__).parent / "migrations"
# Partitions ahead, retention and pruning: at start, then daily.
MAINTENANCE_PERIOD_S = 24 * 3600.0
# The hour that just ended is rolled up a few minutes into the next one (late live readings).
ROLLUP_CHECK_PERIOD_S = 300.0


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("telemetry", settings, stopping, migrations=MIGRATIONS) as rt:
        service = TelemetryService(Repo(rt.db), Partitions(rt.db),
                                   settings.telemetry_retention_days)
        await service.maintain()
        handlers.register(rt, service)
        rt.every("partitions", MAINTENANCE_PERIOD_S, service.maintain)
        rt.every("rollups", ROLLUP_CHECK_PERIOD_S, service.roll_up_last_hour)
        await rt.serve()


def run() -> None:
    run_service("telemetry", main)
