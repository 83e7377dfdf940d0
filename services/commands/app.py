"""commands service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("commands", settings, stopping, migrations=MIGRATIONS) as rt:
        await rt.serve()


def run() -> None:
    run_service("commands", main)
