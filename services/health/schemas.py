"""Request and response types of the health service's RPC operations (and of its repo rows).

Requests decode strictly (a wrong type is a 422 naming the field); partial updates use
`msgspec.UNSET` so that an absent field is told apart from an explicit null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from libs.common.paging import PageQuery

Status = Literal["online", "offline", "degraded"]
Severity = Literal["info", "warning", "critical"]
DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Tag = Annotated[str, Meta(min_length=1, max_length=32)]
# An operator's tag list stays small: it is matched with a JSONB containment index.
MAX_TAGS = 32


# -- rows ----------------------------------------------------------------------------------------
class Device(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    device_id: str
    name: str | None
    description: str | None
    mac_address: str | None
    imei: str | None
    iccid: str | None
    hardware: str | None
    firmware_version: str | None
    capabilities: list[str] | None
    status: str
    status_changed_at: datetime
    last_heartbeat: datetime | None
    last_telemetry: datetime | None
    last_seen: datetime | None
    connection_type: str | None
    signal_strength: int | None
    ip_address: str | None
    boot_count: int | None
    group_id: str | None
    tags: list[str]
    heartbeat_interval: int
    meter: dict[str, Any] | None
    free_heap: int | None
    min_free_heap: int | None
    reset_reason: str | None
    modbus_ok: bool | None
    modbus_errors: int | None
    sd_buffered: int | None
    uptime_s: float | None
    clock_unsynced: bool
    created_at: datetime
    updated_at: datetime


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    device_id: str
    alert_type: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    metadata: dict[str, Any] | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    created_at: datetime
    resolved_at: datetime | None
    occurrence_count: int
    last_seen_at: datetime
    last_value: float | None
    source: str


class Group(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str | None
    created_at: datetime
    device_count: int = 0


# -- requests ------------------------------------------------------------------------------------
class DeviceRef(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    actor: str | None = None


class DeviceListQuery(PageQuery, frozen=True, kw_only=True):
    status: Status | None = None
    group_id: UUID | None = None
    tag: Tag | None = None
    q: Annotated[str, Meta(max_length=64)] | None = None
    firmware_version: Annotated[str, Meta(max_length=16)] | None = None


class DeviceUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    device_id: DeviceId
    actor: str | None = None
    name: Annotated[str, Meta(max_length=128)] | UnsetType | None = UNSET
    description: Annotated[str, Meta(max_length=4000)] | UnsetType | None = UNSET
    group_id: UUID | UnsetType | None = UNSET
    tags: Annotated[list[Tag], Meta(max_length=MAX_TAGS)] | UnsetType = UNSET


class AlertQuery(PageQuery, frozen=True, kw_only=True):
    device_id: DeviceId | None = None
    alert_type: Annotated[str, Meta(max_length=32)] | None = None
    severity: Severity | None = None
    state: Literal["open", "resolved"] | None = None
    acknowledged: bool | None = None
    since: str | None = msgspec.field(default=None, name="from")
    until: str | None = msgspec.field(default=None, name="to")


class AlertAck(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: int
    actor: str


class GroupRef(msgspec.Struct, frozen=True, kw_only=True):
    group_id: UUID


class GroupCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: Annotated[str, Meta(max_length=4000)] | None = None


class GroupUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    group_id: UUID
    name: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    description: Annotated[str, Meta(max_length=4000)] | UnsetType | None = UNSET


# -- responses -----------------------------------------------------------------------------------
class HealthDetails(msgspec.Struct, frozen=True, kw_only=True):
    free_heap: int | None
    min_free_heap: int | None
    reset_reason: str | None
    modbus_ok: bool | None
    modbus_errors: int | None
    sd_buffered: int | None
    uptime_s: float | None
    boot_count: int | None
    clock_unsynced: bool


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    status: str
    status_changed_at: datetime
    last_heartbeat: datetime | None
    last_seen: datetime | None
    seconds_since_heartbeat: float | None
    heartbeat_interval: int
    connection_type: str | None
    signal_strength: int | None
    firmware_version: str | None
    health: HealthDetails
    open_alerts: int


class GroupMembers(msgspec.Struct, frozen=True, kw_only=True):
    group_id: str
    device_ids: list[str]


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    online: int
    degraded: int
    offline: int
    open_alerts: dict[str, int]
    firmware_versions: dict[str, int]


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    heartbeats_per_minute: list[dict[str, Any]]
    devices_by_connection_type: dict[str, int]
    devices_by_signal_quality: dict[str, int]
    alerts_per_day: list[dict[str, Any]]
    telemetry_messages_per_minute: float | None
