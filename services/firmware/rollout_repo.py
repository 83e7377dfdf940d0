"""SQL of rollouts and the per-device state of each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.firmware.repo import row_to

IN_FLIGHT = ("sent", "downloading", "rebooting")
FAILED = ("failed", "rolled_back", "timed_out")
OPEN = ("queued", *IN_FLIGHT)
ACTIVE_ROLLOUT = ("running", "paused")

ROLLOUT_COLUMNS = """id::text AS id, version, state, stages, stage_unit, current_stage,
    max_concurrent, failure_threshold, failure_baseline, device_timeout_s, reason, group_id,
    created_by, created_at, updated_at"""
DEVICE_COLUMNS = """device_id, stage, state, request_id, progress, bytes_downloaded, old_version,
    error, sent_at, rebooting_at, updated_at"""

INSERT_ROLLOUT = f"""
INSERT INTO rollouts (version, state, stages, stage_unit, max_concurrent, failure_threshold,
    device_timeout_s, group_id, created_by)
VALUES ($1, 'running', $2, $3, $4, $5, $6, $7, $8) RETURNING {ROLLOUT_COLUMNS}"""
INSERT_DEVICE = """
INSERT INTO rollout_devices (rollout_id, device_id, position, stage, state, old_version)
VALUES ($1::uuid, $2, $3, $4, $5, $6)"""
GET_ROLLOUT = f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1::uuid"
LIST_ROLLOUTS = f"""
SELECT {ROLLOUT_COLUMNS} FROM rollouts
WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR version = $2)
ORDER BY created_at DESC LIMIT $3 OFFSET $4"""
COUNT_ROLLOUTS = """
SELECT count(*) FROM rollouts
WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR version = $2)"""
RUNNING_ROLLOUTS = f"SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state = 'running'"
VERSION_IN_ACTIVE_ROLLOUT = """
SELECT EXISTS (SELECT 1 FROM rollouts WHERE version = $1 AND state IN ('running', 'paused'))"""
SET_ROLLOUT_STATE = f"""
UPDATE rollouts SET state = $2, reason = $3, updated_at = now()
WHERE id = $1::uuid AND state = ANY($4::text[]) RETURNING {ROLLOUT_COLUMNS}"""
RESUME_ROLLOUT = f"""
UPDATE rollouts SET state = 'running', reason = NULL, failure_baseline = $2, updated_at = now()
WHERE id = $1::uuid AND state = 'paused' RETURNING {ROLLOUT_COLUMNS}"""
ADVANCE_STAGE = """
UPDATE rollouts SET current_stage = $2, failure_baseline = 0, updated_at = now()
WHERE id = $1::uuid"""
COUNTS = "SELECT state, count(*) AS n FROM rollout_devices WHERE rollout_id = $1::uuid GROUP BY 1"
STAGE_COUNTS = """
SELECT state, count(*) AS n FROM rollout_devices WHERE rollout_id = $1::uuid AND stage = $2
GROUP BY 1"""
LIST_DEVICES = f"""
SELECT {DEVICE_COLUMNS} FROM rollout_devices WHERE rollout_id = $1::uuid ORDER BY position"""
NEXT_QUEUED = """
SELECT device_id FROM rollout_devices WHERE rollout_id = $1::uuid AND stage = $2
AND state = 'queued' ORDER BY position LIMIT $3"""
CLAIM = """
UPDATE rollout_devices SET state = 'sent', sent_at = now(), updated_at = now()
WHERE rollout_id = $1::uuid AND device_id = $2 AND state = 'queued'"""
SET_REQUEST_ID = """
UPDATE rollout_devices SET request_id = $3 WHERE rollout_id = $1::uuid AND device_id = $2
AND request_id IS NULL"""
UNCLAIM = """
UPDATE rollout_devices SET state = 'queued', sent_at = NULL, updated_at = now()
WHERE rollout_id = $1::uuid AND device_id = $2 AND state = 'sent' AND request_id IS NULL"""
# The device's open entry in the newest rollout that still tracks it.
OPEN_ENTRY = """
SELECT d.rollout_id::text AS rollout_id, r.version, r.state AS rollout_state, d.device_id,
    d.stage, d.state, d.request_id, d.progress, d.bytes_downloaded, d.old_version, d.error,
    d.sent_at, d.rebooting_at, d.updated_at
FROM rollout_devices d JOIN rollouts r ON r.id = d.rollout_id
WHERE d.device_id = $1 AND d.state = ANY($2::text[]) AND r.state = ANY($3::text[])
ORDER BY r.created_at DESC LIMIT 1"""
SET_DEVICE_STATE = """
UPDATE rollout_devices SET state = $3, progress = COALESCE($4, progress),
    error = COALESCE($5, error), request_id = COALESCE(request_id, $6),
    rebooting_at = CASE WHEN $3 = 'rebooting' THEN now() ELSE rebooting_at END,
    updated_at = now()
WHERE rollout_id = $1::uuid AND device_id = $2 AND state = ANY($7::text[])"""
ADD_BYTES = """
UPDATE rollout_devices d SET bytes_downloaded = GREATEST(d.bytes_downloaded, $3),
    state = CASE WHEN d.state = 'sent' THEN 'downloading' ELSE d.state END, updated_at = now()
FROM rollouts r
WHERE r.id = d.rollout_id AND d.device_id = $1 AND r.version = $2
AND d.state IN ('sent', 'downloading')
RETURNING d.rollout_id::text"""
EXPIRE_DEVICES = """
UPDATE rollout_devices d SET state = 'timed_out', error = 'no outcome in time', updated_at = now()
FROM rollouts r
WHERE r.id = d.rollout_id AND d.state IN ('sent', 'downloading', 'rebooting')
AND d.updated_at < now() - make_interval(secs => r.device_timeout_s)
RETURNING d.rollout_id::text AS rollout_id, d.device_id"""


class Rollout(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: str
    state: str
    stages: list[float]
    stage_unit: str
    current_stage: int
    max_concurrent: int
    failure_threshold: float
    failure_baseline: int
    device_timeout_s: float
    reason: str | None
    group_id: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class RolloutDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    stage: int
    state: str
    request_id: str | None
    progress: float | None
    bytes_downloaded: int
    old_version: str | None
    error: str | None
    sent_at: datetime | None
    rebooting_at: datetime | None
    updated_at: datetime


class OpenEntry(RolloutDevice, frozen=True, kw_only=True):
    rollout_id: str
    version: str
    rollout_state: str


class RolloutRepo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def create(self, fields: dict[str, Any],
                     devices: list[tuple[str, int, str, str | None]]) -> Rollout:
        """Insert a rollout and its devices: (device_id, stage, state, old_version)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                INSERT_ROLLOUT, fields["version"], fields["stages"], fields["stage_unit"],
                fields["max_concurrent"], fields["failure_threshold"],
                fields["device_timeout_s"], fields["group_id"], fields["created_by"])
            assert row is not None
            await conn.executemany(INSERT_DEVICE, [
                (row["id"], device_id, position, stage, state, old)
                for position, (device_id, stage, state, old) in enumerate(devices)])
        return row_to(row, Rollout)

    async def get(self, rollout_id: str) -> Rollout | None:
        row = await self.pool.fetchrow(GET_ROLLOUT, rollout_id)
        return None if row is None else row_to(row, Rollout)

    async def page(self, state: str | None, version: str | None, limit: int,
                   offset: int) -> tuple[list[Rollout], int]:
        rows = await self.pool.fetch(LIST_ROLLOUTS, state, version, limit, offset)
        total = await self.pool.fetchval(COUNT_ROLLOUTS, state, version)
        return [row_to(r, Rollout) for r in rows], int(total)

    async def running(self) -> list[Rollout]:
        return [row_to(r, Rollout) for r in await self.pool.fetch(RUNNING_ROLLOUTS)]

    async def version_in_active_rollout(self, version: str) -> bool:
        return bool(await self.pool.fetchval(VERSION_IN_ACTIVE_ROLLOUT, version))

    async def set_state(self, rollout_id: str, state: str, reason: str | None,
                        from_states: tuple[str, ...]) -> Rollout | None:
        row = await self.pool.fetchrow(SET_ROLLOUT_STATE, rollout_id, state, reason,
                                       list(from_states))
        return None if row is None else row_to(row, Rollout)

    async def resume(self, rollout_id: str, failure_baseline: int) -> Rollout | None:
        row = await self.pool.fetchrow(RESUME_ROLLOUT, rollout_id, failure_baseline)
        return None if row is None else row_to(row, Rollout)

    async def advance_stage(self, rollout_id: str, stage: int) -> None:
        await self.pool.execute(ADVANCE_STAGE, rollout_id, stage)

    async def counts(self, rollout_id: str, stage: int | None = None) -> dict[str, int]:
        rows = (await self.pool.fetch(COUNTS, rollout_id) if stage is None
                else await self.pool.fetch(STAGE_COUNTS, rollout_id, stage))
        return {r["state"]: int(r["n"]) for r in rows}

    async def devices(self, rollout_id: str) -> list[RolloutDevice]:
        return [row_to(r, RolloutDevice) for r in await self.pool.fetch(LIST_DEVICES, rollout_id)]

    async def next_queued(self, rollout_id: str, stage: int, limit: int) -> list[str]:
        rows = await self.pool.fetch(NEXT_QUEUED, rollout_id, stage, limit)
        return [r["device_id"] for r in rows]

    async def claim(self, rollout_id: str, device_id: str) -> bool:
        return str(await self.pool.execute(CLAIM, rollout_id, device_id)).endswith(" 1")

    async def set_request_id(self, rollout_id: str, device_id: str, request_id: str) -> None:
        await self.pool.execute(SET_REQUEST_ID, rollout_id, device_id, request_id)

    async def unclaim(self, rollout_id: str, device_id: str) -> None:
        await self.pool.execute(UNCLAIM, rollout_id, device_id)

    async def open_entry(self, device_id: str, device_states: tuple[str, ...],
                         rollout_states: tuple[str, ...]) -> OpenEntry | None:
        row = await self.pool.fetchrow(OPEN_ENTRY, device_id, list(device_states),
                                       list(rollout_states))
        return None if row is None else row_to(row, OpenEntry)

    async def set_device_state(self, rollout_id: str, device_id: str, state: str, *,
                               from_states: tuple[str, ...], progress: float | None = None,
                               error: str | None = None, request_id: str | None = None) -> bool:
        status = await self.pool.execute(SET_DEVICE_STATE, rollout_id, device_id, state, progress,
                                          error, request_id, list(from_states))
        return str(status).endswith(" 1")

    async def add_bytes(self, device_id: str, version: str, bytes_downloaded: int) -> list[str]:
        rows = await self.pool.fetch(ADD_BYTES, device_id, version, bytes_downloaded)
        return [r[0] for r in rows]

    async def expire_devices(self) -> list[tuple[str, str]]:
        return [(r["rollout_id"], r["device_id"]) for r in await self.pool.fetch(EXPIRE_DEVICES)]
