"""ingest service wiring (placeholder until the MQTT bridge lands)."""

from __future__ import annotations

import asyncio

from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("ingest", settings, stopping) as rt:
        await rt.serve()


def run() -> None:
    run_service("ingest", main)
