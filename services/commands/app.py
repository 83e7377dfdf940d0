"""commands service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from libs.common.lifecycle import run_service
from libs.common.outbox import Outbox
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.commands import handlers
from services.commands.configs import ConfigService
from services.commands.repo import Repo
from services.commands.sealing import Sealer, key_for
from services.commands.service import CommandService

MIGRATIONS = Path(__file__).parent / "migrations"


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("commands", settings, stopping, migrations=MIGRATIONS) as rt:
        repo = Repo(rt.db)
        sealer = Sealer(key_for(settings))
        outbox = Outbox(rt.db, rt.js)
        channels = handlers.BusChannels(rt.js, rt.subjects, outbox)
        commands = CommandService(repo, channels, handlers.HealthDirectory(rt), sealer,
                                  default_timeout_s=settings.command_timeout_s)
        configs = ConfigService(repo, sealer, channels, commands)
        handlers.register(rt, commands, configs, outbox)
        await rt.serve()


def run() -> None:
    run_service("commands", main)
