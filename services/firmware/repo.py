"""SQL of firmware versions, known devices and downloads (rollouts: rollout_repo.py)."""

from __future__ import annotations

from typing import Any, TypeVar

import asyncpg
import msgspec

from services.firmware.schemas import FirmwareVersion

T = TypeVar("T")

VERSION_COLUMNS = """version, filename, file_size, checksum, release_notes, hardware, mandatory,
    active, project_name, idf_version, build_time, app_version, uploaded_by, created_at,
    updated_at"""

INSERT_VERSION = f"""
INSERT INTO firmware_versions (version, sort_key, filename, file_size, checksum, file_path,
    release_notes, hardware, mandatory, project_name, idf_version, build_time, app_version,
    uploaded_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
RETURNING {VERSION_COLUMNS}"""
VERSION_EXISTS = "SELECT EXISTS (SELECT 1 FROM firmware_versions WHERE version = $1)"
GET_VERSION = f"SELECT {VERSION_COLUMNS} FROM firmware_versions WHERE version = $1"
LIST_VERSIONS = f"""
SELECT {VERSION_COLUMNS} FROM firmware_versions
WHERE ($1::text IS NULL OR hardware = $1)
ORDER BY sort_key DESC LIMIT $2 OFFSET $3"""
COUNT_VERSIONS = """
SELECT count(*) FROM firmware_versions WHERE ($1::text IS NULL OR hardware = $1)"""
# Each field changes only when its flag is set (so that hardware can be set back to null).
UPDATE_VERSION = f"""
UPDATE firmware_versions SET
    active = CASE WHEN $2 THEN $3::boolean ELSE active END,
    mandatory = CASE WHEN $4 THEN $5::boolean ELSE mandatory END,
    hardware = CASE WHEN $6 THEN $7::text ELSE hardware END,
    release_notes = CASE WHEN $8 THEN $9::text ELSE release_notes END,
    updated_at = now()
WHERE version = $1
RETURNING {VERSION_COLUMNS}"""
DELETE_VERSION = "DELETE FROM firmware_versions WHERE version = $1 RETURNING checksum"
DIGEST_IN_USE = "SELECT EXISTS (SELECT 1 FROM firmware_versions WHERE checksum = $1)"
NEWEST_FOR_HARDWARE = f"""
SELECT {VERSION_COLUMNS} FROM firmware_versions
WHERE active AND (hardware IS NULL OR hardware = $1)
ORDER BY sort_key DESC LIMIT 1"""

UPSERT_DEVICE = """
INSERT INTO known_devices (device_id, hardware, firmware_version) VALUES ($1, $2, $3)
ON CONFLICT (device_id) DO UPDATE SET
    hardware = COALESCE(EXCLUDED.hardware, known_devices.hardware),
    firmware_version = COALESCE(EXCLUDED.firmware_version, known_devices.firmware_version),
    updated_at = now()
WHERE (EXCLUDED.hardware IS NOT NULL AND EXCLUDED.hardware IS DISTINCT FROM known_devices.hardware)
   OR (EXCLUDED.firmware_version IS NOT NULL
       AND EXCLUDED.firmware_version IS DISTINCT FROM known_devices.firmware_version)"""
# (a heartbeat that changes nothing writes nothing: one a minute per device adds up)
DELETE_DEVICE = "DELETE FROM known_devices WHERE device_id = $1"
GET_DEVICE = "SELECT device_id, hardware, firmware_version FROM known_devices WHERE device_id = $1"
DEVICE_VERSIONS = """
SELECT device_id, firmware_version FROM known_devices WHERE device_id = ANY($1::text[])"""

INSERT_DOWNLOAD = """
INSERT INTO downloads (device_id, version, range_start, range_end, bytes)
VALUES ($1, $2, $3, $4, $5)"""


class KnownDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    hardware: str | None
    firmware_version: str | None


def row_to(row: asyncpg.Record, into: type[T]) -> T:
    return msgspec.convert(dict(row), into)


class VersionRow(msgspec.Struct, frozen=True, kw_only=True):
    """What the service stores for a new version."""

    version: str
    sort_key: str
    filename: str
    file_size: int
    checksum: str
    file_path: str
    release_notes: str | None
    hardware: str | None
    mandatory: bool
    project_name: str
    idf_version: str
    build_time: str
    app_version: str
    uploaded_by: str


class Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- versions ------------------------------------------------------------------------------
    async def insert_version(self, new: VersionRow) -> FirmwareVersion:
        row = await self.pool.fetchrow(
            INSERT_VERSION, new.version, new.sort_key, new.filename, new.file_size, new.checksum,
            new.file_path, new.release_notes, new.hardware, new.mandatory, new.project_name,
            new.idf_version, new.build_time, new.app_version, new.uploaded_by)
        assert row is not None
        return row_to(row, FirmwareVersion)

    async def version_exists(self, version: str) -> bool:
        return bool(await self.pool.fetchval(VERSION_EXISTS, version))

    async def get_version(self, version: str) -> FirmwareVersion | None:
        row = await self.pool.fetchrow(GET_VERSION, version)
        return None if row is None else row_to(row, FirmwareVersion)

    async def list_versions(self, hardware: str | None, limit: int,
                            offset: int) -> tuple[list[FirmwareVersion], int]:
        rows = await self.pool.fetch(LIST_VERSIONS, hardware, limit, offset)
        total = await self.pool.fetchval(COUNT_VERSIONS, hardware)
        return [row_to(r, FirmwareVersion) for r in rows], int(total)

    async def update_version(self, version: str, changes: dict[str, Any]) -> FirmwareVersion | None:
        args: list[Any] = [version]
        for name in ("active", "mandatory", "hardware", "release_notes"):
            args += [name in changes, changes.get(name)]
        row = await self.pool.fetchrow(UPDATE_VERSION, *args)
        return None if row is None else row_to(row, FirmwareVersion)

    async def delete_version(self, version: str) -> tuple[str | None, bool]:
        """Delete; answer the digest and whether another version still uses it."""
        async with self.pool.acquire() as conn, conn.transaction():
            digest = await conn.fetchval(DELETE_VERSION, version)
            if digest is None:
                return None, False
            return digest, bool(await conn.fetchval(DIGEST_IN_USE, digest))

    async def newest_for(self, hardware: str | None) -> FirmwareVersion | None:
        row = await self.pool.fetchrow(NEWEST_FOR_HARDWARE, hardware)
        return None if row is None else row_to(row, FirmwareVersion)

    # -- known devices -------------------------------------------------------------------------
    async def upsert_device(self, device_id: str, hardware: str | None,
                            firmware_version: str | None) -> None:
        await self.pool.execute(UPSERT_DEVICE, device_id, hardware, firmware_version)

    async def delete_device(self, device_id: str) -> None:
        await self.pool.execute(DELETE_DEVICE, device_id)

    async def get_device(self, device_id: str) -> KnownDevice | None:
        row = await self.pool.fetchrow(GET_DEVICE, device_id)
        return None if row is None else row_to(row, KnownDevice)

    async def device_versions(self, device_ids: list[str]) -> dict[str, str | None]:
        rows = await self.pool.fetch(DEVICE_VERSIONS, device_ids)
        return {r["device_id"]: r["firmware_version"] for r in rows}

    # -- downloads -----------------------------------------------------------------------------
    async def record_download(self, device_id: str | None, version: str, range_start: int,
                              range_end: int, size_bytes: int) -> None:
        await self.pool.execute(INSERT_DOWNLOAD, device_id, version, range_start, range_end,
                                size_bytes)
