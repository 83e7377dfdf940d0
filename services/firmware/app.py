"""firmware service wiring: settings, connections, subscribers, start/stop."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

from libs.common import bus
from libs.common.errors import ConsoleError
from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.firmware import handlers
from services.firmware.repo import Repo
from services.firmware.rollout_repo import RolloutRepo
from services.firmware.rollouts import RolloutService
from services.firmware.service import FirmwareService
from services.firmware.storage import FolderStorage, Storage
from services.firmware.storage_s3 import S3Storage
from services.firmware.tracking import Tracker
from services.firmware.uploads import Uploads

MIGRATIONS = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


def open_storage(settings: Settings) -> Storage:
    """A folder, or a bucket (s3://bucket/prefix) with the uploads' temp files kept locally."""
    if settings.firmware_storage.startswith("s3://"):
        return S3Storage.from_url(settings.firmware_storage,
                                  settings.data_dir / "firmware-uploads")
    return FolderStorage(Path(settings.firmware_storage).resolve())


async def probe(storage: Storage) -> None:
    """Say early when the bucket is unreachable or refuses us, without refusing to start: the
    store may be back before anyone uploads or downloads (each call then answers 503)."""
    if isinstance(storage, S3Storage):
        try:
            await storage.exists("0" * 64)
        except ConsoleError as exc:
            log.error("firmware storage is not usable yet: %s", exc.detail)


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    storage = open_storage(settings)
    await probe(storage)
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
