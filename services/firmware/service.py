"""Firmware versions: upload (validate, store by digest), list/edit/delete, device checks and
downloads."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import msgspec
from prometheus_client import Counter

from libs.common.errors import Conflict, InvalidInput, NotFound, Unauthorized
from libs.common.paging import Page
from services.firmware.image import validate_image
from services.firmware.repo import Repo, VersionRow
from services.firmware.rollout_repo import ACTIVE_ROLLOUT, OPEN, RolloutRepo
from services.firmware.rollouts import RolloutService
from services.firmware.schemas import (
    CHUNK_BYTES,
    CheckRequest,
    CheckResponse,
    DownloadInfo,
    DownloadOpen,
    DownloadRecord,
    FirmwareVersion,
    ReadRequest,
    UploadBegin,
    UploadFinish,
    UploadStarted,
    VersionsQuery,
    VersionUpdate,
)
from services.firmware.semver import is_newer, parse_version
from services.firmware.storage import Storage, file_path
from services.firmware.uploads import Uploads

log = logging.getLogger(__name__)

UPLOADS = Counter("acuvim_firmware_uploads_total", "Firmware uploads finished", ["outcome"])
DOWNLOADED_BYTES = Counter("acuvim_firmware_download_bytes_total",
                           "Firmware bytes served to devices and people")


class FirmwareService:
    def __init__(self, repo: Repo, rollout_repo: RolloutRepo, rollouts: RolloutService,
                 storage: Storage, uploads: Uploads, *, upload_route: str,
                 public_base_url: str) -> None:
        self.repo = repo
        self.rollout_repo = rollout_repo
        self.rollouts = rollouts
        self.storage = storage
        self.uploads = uploads
        self.upload_route = upload_route
        self.public_base_url = public_base_url

    # -- upload --------------------------------------------------------------------------------
    async def begin_upload(self, req: UploadBegin) -> UploadStarted:
        if req.version is not None:
            await self._refuse_existing(parse_version(req.version).text)
        upload = self.uploads.begin(req.actor)
        return UploadStarted(upload_id=upload.upload_id, route=self.upload_route)

    async def finish_upload(self, req: UploadFinish) -> FirmwareVersion:
        upload = self.uploads.close(req.upload_id)
        try:
            version = parse_version(req.version)
            info = await asyncio.to_thread(validate_image, upload.path)
            if info.version.removeprefix("v") != version.text and not req.force:
                raise InvalidInput(f"the image says it is version {info.version!r}, not "
                                   f"{version.text!r} (upload with force to accept)")
            await self._refuse_existing(version.text)
            digest = upload.digest
            await self.storage.put(digest, upload.path)
            row = VersionRow(
                version=version.text, sort_key=version.sort_key, filename=req.filename[:128],
                file_size=upload.size_bytes, checksum=digest, file_path=file_path(digest),
                release_notes=req.release_notes, hardware=req.hardware or None,
                mandatory=req.mandatory, project_name=info.project_name,
                idf_version=info.idf_version, build_time=info.build_time,
                app_version=info.version, uploaded_by=upload.actor)
            try:
                stored = await self.repo.insert_version(row)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"firmware version {version.text} exists") from None
        except Exception as exc:
            UPLOADS.labels(outcome=type(exc).__name__).inc()
            raise
        finally:
            upload.path.unlink(missing_ok=True)
        UPLOADS.labels(outcome="stored").inc()
        log.info("firmware %s stored (%d bytes, sha256 %s)", stored.version, stored.file_size,
                 stored.checksum)
        return stored

    async def _refuse_existing(self, version: str) -> None:
        if await self.repo.version_exists(version):
            raise Conflict(f"firmware version {version} exists")

    # -- versions ------------------------------------------------------------------------------
    async def list_versions(self, query: VersionsQuery) -> Page:
        items, total = await self.repo.list_versions(query.hardware, query.limit, query.offset)
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def get_version(self, version: str) -> FirmwareVersion:
        found = await self.repo.get_version(version)
        if found is None:
            raise NotFound(f"no firmware version {version}")
        return found

    async def update_version(self, req: VersionUpdate) -> FirmwareVersion:
        changes: dict[str, Any] = {
            k: v for k, v in msgspec.structs.asdict(req).items()
            if k != "version" and v is not msgspec.UNSET}
        updated = await self.repo.update_version(req.version, changes)
        if updated is None:
            raise NotFound(f"no firmware version {req.version}")
        return updated

    async def delete_version(self, version: str) -> None:
        if await self.rollout_repo.version_in_active_rollout(version):
            raise Conflict(f"firmware version {version} is being rolled out")
        digest, still_used = await self.repo.delete_version(version)
        if digest is None:
            raise NotFound(f"no firmware version {version}")
        if not still_used:
            await self.storage.delete(digest)

    # -- devices -------------------------------------------------------------------------------
    async def check(self, req: CheckRequest) -> CheckResponse:
        hardware, current = req.hardware, req.current_version
        if req.device_id is not None:
            device = await self.repo.get_device(req.device_id)
            if device is None:
                raise NotFound(f"unknown device {req.device_id}")
            hardware = hardware or device.hardware
            current = current or device.firmware_version
            entry = await self.rollout_repo.open_entry(req.device_id, OPEN, ACTIVE_ROLLOUT)
            if entry is not None:
                # A device in a rollout waits for its turn, then gets the rollout's version.
                if entry.state == "queued" or entry.rollout_state != "running":
                    return CheckResponse(update_available=False)
                return self._answer(await self.repo.get_version(entry.version), current)
        return self._answer(await self.repo.newest_for(hardware), current)

    def _answer(self, latest: FirmwareVersion | None, current: str | None) -> CheckResponse:
        if latest is None or not is_newer(latest.version, current):
            return CheckResponse(update_available=False)
        return CheckResponse(
            update_available=True, version=latest.version, url=self.download_url(latest.version),
            size=latest.file_size, checksum=latest.checksum, release_notes=latest.release_notes,
            mandatory=latest.mandatory)

    def download_url(self, version: str) -> str:
        return f"{self.public_base_url}/api/firmware/download/{version}"

    async def open_download(self, req: DownloadOpen) -> DownloadInfo:
        if req.device_id is not None and await self.repo.get_device(req.device_id) is None:
            raise Unauthorized(f"unknown device {req.device_id}")
        found = await self.get_version(req.version)
        if req.device_id is not None:
            await self.rollouts.downloaded(req.device_id, found.version, 0)
        return DownloadInfo(version=found.version, size=found.file_size,
                            checksum=found.checksum)

    async def read(self, req: ReadRequest) -> bytes:
        if req.offset < 0 or not 0 < req.length <= CHUNK_BYTES:
            raise InvalidInput(f"read 1..{CHUNK_BYTES} bytes from a non-negative offset")
        data = await self.storage.read(req.checksum, req.offset, req.length)
        DOWNLOADED_BYTES.inc(len(data))
        return data

    async def record_download(self, req: DownloadRecord) -> None:
        await self.repo.record_download(req.device_id, req.version, req.range_start,
                                        req.range_end, req.bytes)
        if req.device_id is not None:
            await self.rollouts.downloaded(req.device_id, req.version,
                                           req.range_start + req.bytes)
            await self.rollouts.publish_download(req)
