"""firmware service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from libs.common import bus
from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.firmware import handlers
from services.firmware.repo import Repo
from services.firmware.rollout_repo import RolloutRepo
from services.firmware.rollouts import RolloutService
from services.firmware.service import FirmwareService
from services.firmware.storage import open_storage
from services.firmware.tracking import Tracker
from services.firmware.uploads import Uploads

MIGRATIONS = Path(__file__).parent / "migrations"


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    storage = open_storage(settings.firmware_storage)
    uploads = Uploads(storage.temp_folder())
    # Chunks of an upload must reach the replica holding its temp file: a subject of its own.
    replica = f"{settings.instance_id}-{uuid.uuid4().hex[:8]}"
    async with Runtime.open("firmware", settings, stopping, migrations=MIGRATIONS) as rt:
        async def publish(subject: str, fact: Any) -> None:
            await bus.publish_fact(rt.js, subject, fact)

        repo, rollout_repo = Repo(rt.db), RolloutRepo(rt.db)
        rollouts = RolloutService(repo, rollout_repo, rt.rpc_client, rt.subjects, publish,
                                  settings.public_base_url)
        firmware = FirmwareService(repo, rollout_repo, rollouts, storage, uploads,
                                   upload_route=f"upload.{replica}",
                                   public_base_url=settings.public_base_url)
        handlers.register(rt, firmware, rollouts, Tracker(repo, rollout_repo, rollouts))
        try:
            await rt.serve()
        finally:
            uploads.abort_all()


def run() -> None:
    run_service("firmware", main)
