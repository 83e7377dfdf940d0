"""Request and answer types of the commands service's RPC operations (`{root}.rpc.commands.*`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from libs.common.paging import PageQuery

DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Actor = Annotated[str, msgspec.Meta(max_length=128)]
# A queued command waits at most this long for its device (30 days).
Ttl_s = Annotated[int, msgspec.Meta(ge=1, le=30 * 86_400)]
Timeout_s = Annotated[int, msgspec.Meta(ge=1, le=86_400)]

Status = Literal["pending", "sent", "ack", "success", "error", "timeout", "expired", "cancelled"]
FINAL_STATUSES = frozenset({"success", "error", "timeout", "expired", "cancelled"})
# A queued command lives a day unless the caller says otherwise.
DEFAULT_TTL_S = 86_400


class SendCommand(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    command: str
    params: dict[str, Any] | None = None
    ttl_s: Ttl_s = DEFAULT_TTL_S
    timeout_s: Timeout_s | None = None
    created_by: Actor | None = None
    wait_s: float | None = None  # held by the gateway, ignored here


class GetCommand(msgspec.Struct, frozen=True, kw_only=True):
    request_id: RequestId
    device_id: DeviceId | None = None  # when given, a command of another device is a 404


class CancelCommand(msgspec.Struct, frozen=True, kw_only=True):
    request_id: RequestId
    device_id: DeviceId | None = None
    actor: Actor | None = None


class ListCommands(PageQuery, frozen=True, kw_only=True):
    device_id: DeviceId
    status: Status | None = None
    command: str | None = None
    from_: datetime | None = msgspec.field(default=None, name="from")
    to: datetime | None = None


class SendGroupCommand(msgspec.Struct, frozen=True, kw_only=True):
    group_id: str
    command: str
    params: dict[str, Any] | None = None
    ttl_s: Ttl_s = DEFAULT_TTL_S
    timeout_s: Timeout_s | None = None
    created_by: Actor | None = None


class GetGroupCommand(msgspec.Struct, frozen=True, kw_only=True):
    group_id: str
    batch_id: str


class GroupMembers(msgspec.Struct, frozen=True, kw_only=True):
    """health's answer to `groups.members`."""

    group_id: str
    device_ids: list[str]


class GetConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    history_limit: Annotated[int, msgspec.Meta(ge=0, le=100)] = 20


class PushConfig(msgspec.Struct, frozen=True, kw_only=True):
    device_id: DeviceId
    config: dict[str, Any]
    created_by: Actor | None = None
    ttl_s: Ttl_s = DEFAULT_TTL_S


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """A command as stored (params with sealed secrets) and, masked, as answered."""

    request_id: str
    device_id: str
    command: str
    params: dict[str, Any]
    status: str
    progress: float | None
    response: Any
    error: str | None
    created_by: str | None
    batch_id: str | None
    ttl_s: int
    timeout_s: int
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


class CommandEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    request_id: str
    status: str
    at: datetime
    detail: Any = None


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """A command after a change, and the id of the event that recorded it."""

    command: Command
    event_id: int
