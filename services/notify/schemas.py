"""Request and answer types of the notify service's RPC operations (`{root}.rpc.notify.*`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from libs.common.paging import PageQuery

Event = Literal["device_offline", "device_online", "alert_opened", "alert_resolved",
                "rollout_paused", "command_timed_out"]
Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
RuleState = Literal["active", "paused"]
RuleId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F-]{36}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
Address = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>,;]{1,64}@[^@\s<>,;]{1,255}$")]
# At most one message a day per rule: a longer digest would hold news past the retry window.
DigestMinutes = Annotated[int, msgspec.Meta(ge=0, le=1440)]


# -- scope and target: tagged by `kind` -----------------------------------------------------------
class AllDevices(msgspec.Struct, frozen=True, tag_field="kind", tag="all"):
    pass


class GroupScope(msgspec.Struct, frozen=True, tag_field="kind", tag="group"):
    group_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class TagScope(msgspec.Struct, frozen=True, tag_field="kind", tag="tag"):
    tag: Tag


Scope = AllDevices | GroupScope | TagScope


class WebhookTarget(msgspec.Struct, frozen=True, tag_field="kind", tag="webhook"):
    url: Url


class EmailTarget(msgspec.Struct, frozen=True, tag_field="kind", tag="email"):
    addresses: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=20)]


Target = WebhookTarget | EmailTarget


# -- requests -------------------------------------------------------------------------------------
class CreateRule(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    events: Annotated[list[Event], msgspec.Meta(min_length=1)]
    target: Target
    scope: Scope = AllDevices()
    min_severity: Severity = "warning"
    digest_minutes: DigestMinutes = 0
    created_by: str | None = None


class UpdateRule(msgspec.Struct, frozen=True, kw_only=True):
    """Fields left out keep their value; `state: active` resumes a paused rule;
    `rotate_secret` gives a webhook a new secret (answered once, like at creation)."""

    rule_id: RuleId
    name: Name | None = None
    events: Annotated[list[Event], msgspec.Meta(min_length=1)] | None = None
    target: Target | None = None
    scope: Scope | None = None
    min_severity: Severity | None = None
    digest_minutes: DigestMinutes | None = None
    state: RuleState | None = None
    rotate_secret: bool = False


class RuleRef(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: RuleId


class ListRules(PageQuery, frozen=True, kw_only=True):
    pass


class ListDeliveries(PageQuery, frozen=True, kw_only=True):
    rule_id: RuleId
    status: Literal["pending", "sending", "delivered", "failed", "cancelled", "bundled"] | None \
        = None


# -- answers --------------------------------------------------------------------------------------
class Rule(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    name: str
    events: list[str]
    min_severity: str
    scope: Scope
    target: Target
    digest_minutes: int
    state: str
    paused_reason: str | None
    consecutive_failures: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    # Only in the answer that created the secret (creation or rotation): shown once.
    secret: str | None = None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    rule_id: str
    event: str
    device_id: str | None
    occurred_at: datetime
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    digest_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    updated_at: datetime


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed delivery with what sending it needs (its rule's target)."""

    id: str
    rule_id: str
    event: str
    device_id: str | None
    occurred_at: datetime
    data: dict[str, Any]
    attempts: int
    created_at: datetime
    target_kind: str
    url: str | None
    secret: str | None
    addresses: list[str] | None


class DeviceRef(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    group_id: str | None
    tags: list[str]
