"""What operators do with the fleet: devices, alerts and groups (the RPC side of the service).

A change that is a fact (device updated or deleted, alert acknowledged) stores the fact in the
outbox in its own transaction: it is published after the commit, even if NATS is down then.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from msgspec import UNSET

from libs.common.codec import encode, to_builtins
from libs.common.errors import BadRequest, Conflict, InvalidInput, NotFound
from libs.common.messages.events import AlertChanged, DeviceDeleted, DeviceUpdated
from libs.common.outbox import Outbox
from libs.common.paging import Page, PageQuery
from libs.common.subjects import Subjects
from services.health import repo, repo_alerts
from services.health.repo import Conn
from services.health.schemas import (
    Alert,
    AlertAck,
    AlertQuery,
    Device,
    DeviceListQuery,
    DeviceStatus,
    DeviceUpdate,
    Group,
    GroupCreate,
    GroupMembers,
    GroupUpdate,
    HealthDetails,
)


def parse_time(field: str, raw: str) -> datetime:
    """ISO 8601 (with a zone; UTC when none) or epoch seconds; else a 400 naming the field."""
    text = raw.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field}: expected an ISO 8601 time or epoch seconds, "
                         f"got {raw[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def like_pattern(text: str) -> str:
    """A case-insensitive substring pattern, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Fleet:
    def __init__(self, pool: asyncpg.Pool, subjects: Subjects, outbox: Outbox) -> None:
        self.pool = pool
        self.subjects = subjects
        self.outbox = outbox

    async def _fact(self, conn: Conn, subject: str, fact: Any) -> None:
        """An operator's change happens once: a fresh message id."""
        await self.outbox.add(conn, subject, encode(fact), f"fleet:{uuid4().hex}")

    # -- devices -------------------------------------------------------------------------------
    async def list_devices(self, query: DeviceListQuery) -> Page:
        filters = (query.status, query.group_id, query.tag,
                   like_pattern(query.q) if query.q else None, query.firmware_version)
        items, total = await repo.list_devices(self.pool, filters, query.limit, query.offset)
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def get_device(self, device_id: str) -> Device:
        device = await repo.get_device(self.pool, device_id)
        if device is None:
            raise NotFound(f"no device {device_id!r}")
        return device

    async def update_device(self, change: DeviceUpdate) -> Device:
        args = (change.device_id,
                change.name is not UNSET, None if change.name is UNSET else change.name,
                change.description is not UNSET,
                None if change.description is UNSET else change.description,
                change.group_id is not UNSET,
                None if change.group_id is UNSET else change.group_id,
                change.tags is not UNSET,
                None if change.tags is UNSET else sorted(set(change.tags)))
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                device = await repo.update_device(conn, args)
            except asyncpg.ForeignKeyViolationError:
                raise InvalidInput(f"group_id: no group {change.group_id}") from None
            if device is None:
                raise NotFound(f"no device {change.device_id!r}")
            await self._fact(conn, self.subjects.device_updated(device.device_id), DeviceUpdated(
                occurred_at=time.time(), device_id=device.device_id, device=to_builtins(device)))
        self.outbox.nudge()
        return device

    async def delete_device(self, device_id: str) -> None:
        """Its alerts go with it; other services drop their data on the DeviceDeleted fact."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await repo.delete_device(conn, device_id):
                raise NotFound(f"no device {device_id!r}")
            await self._fact(conn, self.subjects.device_deleted(device_id),
                             DeviceDeleted(occurred_at=time.time(), device_id=device_id))
        self.outbox.nudge()

    async def device_status(self, device_id: str) -> DeviceStatus:
        d = await self.get_device(device_id)
        since = (None if d.last_heartbeat is None
                 else round((datetime.now(UTC) - d.last_heartbeat).total_seconds(), 3))
        return DeviceStatus(
            device_id=d.device_id, status=d.status, status_changed_at=d.status_changed_at,
            last_heartbeat=d.last_heartbeat, last_seen=d.last_seen,
            seconds_since_heartbeat=since, heartbeat_interval=d.heartbeat_interval,
            connection_type=d.connection_type, signal_strength=d.signal_strength,
            firmware_version=d.firmware_version,
            health=HealthDetails(
                free_heap=d.free_heap, min_free_heap=d.min_free_heap,
                reset_reason=d.reset_reason, modbus_ok=d.modbus_ok,
                modbus_errors=d.modbus_errors, sd_buffered=d.sd_buffered, uptime_s=d.uptime_s,
                boot_count=d.boot_count, clock_unsynced=d.clock_unsynced),
            open_alerts=await repo_alerts.count_open_of_device(self.pool, device_id))

    # -- alerts --------------------------------------------------------------------------------
    async def list_alerts(self, query: AlertQuery) -> Page:
        since = parse_time("from", query.since) if query.since else None
        until = parse_time("to", query.until) if query.until else None
        if since and until and since > until:
            raise BadRequest("from: must not be after to")
        filters = (query.device_id, query.alert_type, query.severity, query.state,
                   query.acknowledged, since, until)
        items, total = await repo_alerts.list_alerts(self.pool, filters, query.limit,
                                                     query.offset)
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def acknowledge(self, ack: AlertAck) -> Alert:
        """Records who and when; acknowledging again keeps the first acknowledgement."""
        async with self.pool.acquire() as conn, conn.transaction():
            alert, newly = await repo_alerts.acknowledge(conn, ack.alert_id, ack.actor[:128])
            if alert is None:
                raise NotFound(f"no alert {ack.alert_id}")
            if newly:
                await self._fact(conn, self.subjects.alert_updated(alert.device_id),
                                 AlertChanged(occurred_at=time.time(), device_id=alert.device_id,
                                              alert=to_builtins(alert)))
        if newly:
            self.outbox.nudge()
        return alert

    # -- groups --------------------------------------------------------------------------------
    async def list_groups(self, query: PageQuery) -> Page:
        items, total = await repo.list_groups(self.pool, query.limit, query.offset)
        return Page(items=items, total=total, limit=query.limit, offset=query.offset)

    async def get_group(self, group_id: UUID) -> Group:
        group = await repo.get_group(self.pool, group_id)
        if group is None:
            raise NotFound(f"no group {group_id}")
        return group

    async def create_group(self, new: GroupCreate) -> Group:
        try:
            return await repo.insert_group(self.pool, new.name.strip() or new.name,
                                           new.description)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a group named {new.name!r} exists") from None

    async def update_group(self, change: GroupUpdate) -> Group:
        args = (change.group_id,
                change.name is not UNSET, None if change.name is UNSET else change.name,
                change.description is not UNSET,
                None if change.description is UNSET else change.description)
        try:
            found = await repo.update_group(self.pool, args)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a group named {change.name!r} exists") from None
        if not found:
            raise NotFound(f"no group {change.group_id}")
        return await self.get_group(change.group_id)

    async def delete_group(self, group_id: UUID) -> None:
        """Its devices stay, with no group (the foreign key sets it null)."""
        if not await repo.delete_group(self.pool, group_id):
            raise NotFound(f"no group {group_id}")

    async def group_members(self, group_id: UUID) -> GroupMembers:
        await self.get_group(group_id)
        return GroupMembers(group_id=str(group_id),
                            device_ids=await repo.group_members(self.pool, group_id))
