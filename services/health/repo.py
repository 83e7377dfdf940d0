"""Devices and groups in PostgreSQL: SQL as named constants, rows as msgspec Structs.

Writes that must see the previous state of a device (heartbeats, status reports) lock its row
(`lock_device`) inside a transaction, so replicas handling messages of one device at the same
time never both report the same change of state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.health.schemas import Device, Group

# A pooled connection (asyncpg's proxy) or a plain one.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

DEVICE_COLUMNS = """
    id::text AS id, device_id, name, description, mac_address, imei, iccid, hardware,
    firmware_version, capabilities, status, status_changed_at, last_heartbeat, last_telemetry,
    last_seen, connection_type, signal_strength, ip_address, boot_count, group_id::text AS
    group_id, tags, heartbeat_interval, meter, free_heap, min_free_heap, reset_reason, modbus_ok,
    modbus_errors, sd_buffered, uptime_s, clock_unsynced, created_at, updated_at"""

# Registration: what the device says about itself; operator fields (name, description, group,
# tags) are never touched here.
UPSERT_REGISTRATION = f"""
INSERT INTO devices (device_id, mac_address, imei, iccid, hardware, firmware_version,
                     capabilities, heartbeat_interval, meter)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (device_id) DO UPDATE SET
    mac_address = COALESCE(EXCLUDED.mac_address, devices.mac_address),
    imei = COALESCE(EXCLUDED.imei, devices.imei),
    iccid = COALESCE(EXCLUDED.iccid, devices.iccid),
    hardware = COALESCE(EXCLUDED.hardware, devices.hardware),
    firmware_version = COALESCE(EXCLUDED.firmware_version, devices.firmware_version),
    capabilities = COALESCE(EXCLUDED.capabilities, devices.capabilities),
    heartbeat_interval = EXCLUDED.heartbeat_interval,
    meter = COALESCE(EXCLUDED.meter, devices.meter),
    updated_at = now()
RETURNING {DEVICE_COLUMNS}, (xmax = 0) AS inserted"""

# A device heard of before it registered (heartbeat, status, alert) gets a minimal row.
INSERT_MINIMAL = "INSERT INTO devices (device_id) VALUES ($1) ON CONFLICT (device_id) DO NOTHING"

LOCK_DEVICE = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1 FOR UPDATE"

APPLY_HEARTBEAT = f"""
UPDATE devices SET
    status = 'online',
    previous_status = CASE WHEN status = 'online' THEN previous_status ELSE status END,
    status_changed_at = CASE WHEN status = 'online' THEN status_changed_at ELSE now() END,
    last_heartbeat = GREATEST(last_heartbeat, $2),
    last_seen = GREATEST(last_seen, $3),
    clock_unsynced = $4,
    firmware_version = COALESCE($5, firmware_version),
    connection_type = COALESCE($6, connection_type),
    signal_strength = COALESCE($7, signal_strength),
    ip_address = COALESCE($8, ip_address),
    boot_count = COALESCE($9, boot_count),
    free_heap = COALESCE($10, free_heap),
    min_free_heap = COALESCE($11, min_free_heap),
    reset_reason = COALESCE($12, reset_reason),
    modbus_ok = COALESCE($13, modbus_ok),
    modbus_errors = COALESCE($14, modbus_errors),
    sd_buffered = COALESCE($15, sd_buffered),
    uptime_s = COALESCE($16, uptime_s),
    heartbeat_interval = COALESCE($17, heartbeat_interval),
    updated_at = now()
WHERE device_id = $1
RETURNING {DEVICE_COLUMNS}"""

SET_STATUS = f"""
UPDATE devices SET
    status = $2::text,
    previous_status = CASE WHEN status = $2::text THEN previous_status ELSE status END,
    status_changed_at = CASE WHEN status = $2::text THEN status_changed_at ELSE now() END,
    last_seen = CASE WHEN $2::text = 'online' THEN GREATEST(last_seen, $3) ELSE last_seen END,
    connection_type = COALESCE($4, connection_type),
    updated_at = now()
WHERE device_id = $1
RETURNING {DEVICE_COLUMNS}"""

GET_DEVICE = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1"

# Optional filters as "($n IS NULL OR ...)": one statement, planned once.
_DEVICE_FILTER = """
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::uuid IS NULL OR group_id = $2)
  AND ($3::text IS NULL OR tags @> jsonb_build_array($3::text))
  AND ($4::text IS NULL OR device_id ILIKE $4 OR name ILIKE $4)
  AND ($5::text IS NULL OR firmware_version = $5)"""
LIST_DEVICES = f"""
SELECT {DEVICE_COLUMNS} FROM devices {_DEVICE_FILTER}
ORDER BY device_id LIMIT $6 OFFSET $7"""
COUNT_DEVICES = f"SELECT count(*) FROM devices {_DEVICE_FILTER}"

UPDATE_DEVICE = f"""
UPDATE devices SET
    name = CASE WHEN $2 THEN $3 ELSE name END,
    description = CASE WHEN $4 THEN $5 ELSE description END,
    group_id = CASE WHEN $6 THEN $7::uuid ELSE group_id END,
    tags = CASE WHEN $8 THEN $9::jsonb ELSE tags END,
    updated_at = now()
WHERE device_id = $1
RETURNING {DEVICE_COLUMNS}"""

DELETE_DEVICE = "DELETE FROM devices WHERE device_id = $1 RETURNING device_id"

GROUP_COLUMNS = """g.id::text AS id, g.name, g.description, g.created_at,
    (SELECT count(*) FROM devices d WHERE d.group_id = g.id)::int AS device_count"""
LIST_GROUPS = f"SELECT {GROUP_COLUMNS} FROM device_groups g ORDER BY g.name LIMIT $1 OFFSET $2"
COUNT_GROUPS = "SELECT count(*) FROM device_groups"
GET_GROUP = f"SELECT {GROUP_COLUMNS} FROM device_groups g WHERE g.id = $1"
INSERT_GROUP = """
INSERT INTO device_groups (name, description) VALUES ($1, $2)
RETURNING id::text AS id, name, description, created_at, 0 AS device_count"""
UPDATE_GROUP = """
UPDATE device_groups SET
    name = CASE WHEN $2 THEN $3 ELSE name END,
    description = CASE WHEN $4 THEN $5 ELSE description END
WHERE id = $1 RETURNING id"""
DELETE_GROUP = "DELETE FROM device_groups WHERE id = $1 RETURNING id"
GROUP_EXISTS = "SELECT EXISTS (SELECT 1 FROM device_groups WHERE id = $1)"
GROUP_MEMBERS = "SELECT device_id FROM devices WHERE group_id = $1 ORDER BY device_id"


def device_of(row: asyncpg.Record) -> Device:
    fields = dict(row)
    fields.pop("inserted", None)
    return Device(**fields)


def group_of(row: asyncpg.Record) -> Group:
    return Group(**dict(row))


async def upsert_registration(conn: Conn, args: tuple[Any, ...],
                              ) -> tuple[Device, bool]:
    row = await conn.fetchrow(UPSERT_REGISTRATION, *args)
    assert row is not None
    return device_of(row), bool(row["inserted"])


async def lock_device(conn: Conn, device_id: str) -> tuple[Device, bool]:
    """The device's row, locked; created minimal when unknown (answers whether it was)."""
    row = await conn.fetchrow(LOCK_DEVICE, device_id)
    if row is not None:
        return device_of(row), False
    created = await conn.execute(INSERT_MINIMAL, device_id) == "INSERT 0 1"
    row = await conn.fetchrow(LOCK_DEVICE, device_id)
    assert row is not None
    return device_of(row), created


async def apply_heartbeat(conn: Conn, args: tuple[Any, ...]) -> Device:
    row = await conn.fetchrow(APPLY_HEARTBEAT, *args)
    assert row is not None
    return device_of(row)


async def set_status(conn: Conn, device_id: str, status: str, seen_at: datetime,
                     connection_type: str | None) -> Device:
    row = await conn.fetchrow(SET_STATUS, device_id, status, seen_at, connection_type)
    assert row is not None
    return device_of(row)


async def get_device(conn: Conn | asyncpg.Pool, device_id: str) -> Device | None:
    row = await conn.fetchrow(GET_DEVICE, device_id)
    return device_of(row) if row else None


async def list_devices(pool: asyncpg.Pool, filters: tuple[Any, ...], limit: int, offset: int,
                       ) -> tuple[list[Device], int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_DEVICES, *filters, limit, offset)
        total = await conn.fetchval(COUNT_DEVICES, *filters)
    return [device_of(r) for r in rows], int(total)


async def update_device(pool: Conn | asyncpg.Pool, args: tuple[Any, ...]) -> Device | None:
    row = await pool.fetchrow(UPDATE_DEVICE, *args)
    return device_of(row) if row else None


async def delete_device(pool: Conn | asyncpg.Pool, device_id: str) -> bool:
    return await pool.fetchval(DELETE_DEVICE, device_id) is not None


async def list_groups(pool: asyncpg.Pool, limit: int, offset: int) -> tuple[list[Group], int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_GROUPS, limit, offset)
        total = await conn.fetchval(COUNT_GROUPS)
    return [group_of(r) for r in rows], int(total)


async def get_group(pool: asyncpg.Pool, group_id: UUID) -> Group | None:
    row = await pool.fetchrow(GET_GROUP, group_id)
    return group_of(row) if row else None


async def insert_group(pool: asyncpg.Pool, name: str, description: str | None) -> Group:
    row = await pool.fetchrow(INSERT_GROUP, name, description)
    assert row is not None
    return group_of(row)


async def update_group(pool: asyncpg.Pool, args: tuple[Any, ...]) -> bool:
    return await pool.fetchval(UPDATE_GROUP, *args) is not None


async def delete_group(pool: asyncpg.Pool, group_id: UUID) -> bool:
    return await pool.fetchval(DELETE_GROUP, group_id) is not None


async def group_exists(pool: asyncpg.Pool, group_id: UUID) -> bool:
    return bool(await pool.fetchval(GROUP_EXISTS, group_id))


async def group_members(pool: asyncpg.Pool, group_id: UUID) -> list[str]:
    return [r["device_id"] for r in await pool.fetch(GROUP_MEMBERS, group_id)]
