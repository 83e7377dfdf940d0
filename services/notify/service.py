"""The domain of notify: rules (what to tell whom) and turning facts into deliveries.

A fact becomes one delivery per matching rule, keyed by (rule, stream sequence), so a fact
handled twice queues nothing twice. Offline notices wait the quiet period and are cancelled when
the device comes back in time (flapping); the all-clear (device_online) goes only where the
offline notice went. Sending is the dispatcher's (dispatch.py).

A webhook URL is checked against the egress policy when a rule is created or its target
changed: a host on a refused address is a 400. A host that does not resolve now is accepted
with a warning in the log (DNS may be down for a while; every delivery checks again).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from libs.common.errors import BadRequest, InvalidInput, NotFound
from libs.common.messages.events import (
    AlertChanged,
    CommandUpdated,
    DeviceStatusChanged,
    FirmwareRolloutUpdated,
)
from libs.common.paging import Page
from services.notify.delivery import Senders
from services.notify.egress import EgressPolicy, RefusedAddress
from services.notify.repo import Repo
from services.notify.schemas import (
    SEVERITY_RANK,
    AllDevices,
    CreateRule,
    Delivery,
    DeviceRef,
    EmailTarget,
    ListDeliveries,
    ListRules,
    Rule,
    RuleRef,
    Target,
    UpdateRule,
    WebhookTarget,
)

log = logging.getLogger(__name__)

# Resolving a webhook's host while a rule is saved: well within the gateway's RPC timeout (5 s).
RESOLVE_TIMEOUT_S = 2.0
SAMPLE = {"message": "This is a test notification from the Acuvim console.",
          "sample": True}


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class RuleService:
    """Rules through the API; `email_configured`: whether e-mail targets can be sent;
    `egress`: where webhooks may connect."""

    def __init__(self, repo: Repo, senders: Senders, *, email_configured: bool,
                 egress: EgressPolicy) -> None:
        self.repo = repo
        self.senders = senders
        self.email_configured = email_configured
        self.egress = egress

    def _check(self, events: list[str], target: Target) -> None:
        if "device_online" in events and "device_offline" not in events:
            raise InvalidInput("events: device_online is the all-clear of a device_offline "
                               "notice; subscribe to device_offline too")
        if isinstance(target, WebhookTarget):
            parts = urlsplit(target.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidInput("target.url: expected an http(s) URL with a host")
        if isinstance(target, EmailTarget) and not self.email_configured:
            raise InvalidInput("target: e-mail needs ACUVIM_SMTP_URL on the notify service")

    async def _check_reachable(self, target: Target) -> None:
        """A webhook's host may be reached (see egress.py)."""
        if not isinstance(target, WebhookTarget):
            return
        try:
            await self.egress.check_url(target.url, RESOLVE_TIMEOUT_S)
        except httpx.InvalidURL as exc:
            raise InvalidInput(f"target.url: {exc}") from None
        except RefusedAddress as exc:
            log.info("webhook URL refused: %s (%s)", exc,
                     ", ".join(str(address) for address, _ in exc.refused))
            raise BadRequest(f"target.url: {exc}") from None
        except OSError as exc:  # TimeoutError included
            # The host only: a webhook URL's path often holds a token.
            log.warning("webhook host %s does not resolve now (%s); rule saved, each delivery "
                        "checks it again", httpx.URL(target.url).host, str(exc) or "timed out")

    async def create(self, req: CreateRule) -> Rule:
        events: list[str] = sorted(set(req.events))
        self._check(events, req.target)
        await self._check_reachable(req.target)
        secret = new_secret() if isinstance(req.target, WebhookTarget) else None
        return await self.repo.insert_rule(
            name=req.name, events=events, min_severity=req.min_severity, scope=req.scope,
            target=req.target, secret=secret, digest_minutes=req.digest_minutes,
            created_by=req.created_by)

    async def get(self, ref: RuleRef) -> Rule:
        rule = await self.repo.get_rule(ref.rule_id)
        if rule is None:
            raise NotFound(f"no notification rule {ref.rule_id}")
        return rule

    async def list(self, q: ListRules) -> Page:
        rules, total = await self.repo.rules(q.limit, q.offset)
        return Page(items=rules, total=total, limit=q.limit, offset=q.offset)

    async def update(self, req: UpdateRule) -> Rule:
        current = await self.get(RuleRef(rule_id=req.rule_id))
        changes = {name: getattr(req, name) for name in
                   ("name", "events", "target", "scope", "min_severity", "digest_minutes",
                    "state") if getattr(req, name) is not None}
        if "events" in changes:
            changes["events"] = sorted(set(changes["events"]))
        updated = msgspec.structs.replace(current, **changes)
        self._check(updated.events, updated.target)
        if req.target is not None:  # a rule on a now refused host may still be paused, renamed
            await self._check_reachable(req.target)
        became_webhook = (isinstance(updated.target, WebhookTarget)
                          and not isinstance(current.target, WebhookTarget))
        secret = new_secret() if req.rotate_secret or became_webhook else None
        if secret is not None and not isinstance(updated.target, WebhookTarget):
            raise InvalidInput("rotate_secret: only a webhook has a secret")
        saved = await self.repo.update_rule(updated, secret)
        if saved is None:
            raise NotFound(f"no notification rule {req.rule_id}")
        return saved

    async def delete(self, ref: RuleRef) -> None:
        if not await self.repo.delete_rule(ref.rule_id):
            raise NotFound(f"no notification rule {ref.rule_id}")

    async def test(self, ref: RuleRef) -> Delivery:
        """Send a sample to the rule's target now, once (no retry); the logged delivery."""
        await self.get(ref)
        delivery_id = str(uuid.uuid4())
        outgoing = await self.repo.insert_test(delivery_id, ref.rule_id, SAMPLE)
        outcome = await self.senders.send(outgoing)
        await self.repo.finish_test(delivery_id, outcome.delivered, outcome.error)
        found = await self.repo.delivery(delivery_id)
        assert found is not None
        return found

    async def deliveries(self, q: ListDeliveries) -> Page:
        await self.get(RuleRef(rule_id=q.rule_id))
        items, total = await self.repo.deliveries(q.rule_id, q.status, q.limit, q.offset)
        return Page(items=items, total=total, limit=q.limit, offset=q.offset)


class FactRouter:
    """Facts in, deliveries queued."""

    def __init__(self, repo: Repo, *, quiet_period_s: float) -> None:
        self.repo = repo
        self.quiet_period = timedelta(seconds=quiet_period_s)

    async def device_known(self, device_id: str, device: dict[str, Any],
                           occurred_at: float) -> None:
        tags = device.get("tags") or []
        ref = DeviceRef(device_id=device_id, group_id=device.get("group_id"),
                        tags=[str(t) for t in tags] if isinstance(tags, list) else [])
        await self.repo.upsert_device(ref, at(occurred_at))

    async def device_deleted(self, device_id: str, occurred_at: float) -> None:
        await self.repo.delete_device(device_id, at(occurred_at))

    async def status_changed(self, fact: DeviceStatusChanged, seq: int) -> None:
        data = {"old_status": fact.old_status, "new_status": fact.new_status,
                "reason": fact.reason}
        if fact.new_status == "offline":
            # Held for the quiet period: a device back by then notifies nobody.
            await self.queue("device_offline", fact.device_id, fact.occurred_at, data, seq,
                             delay=self.quiet_period)
        elif fact.old_status == "offline":
            rules = await self.repo.matching_rules("device_online",
                                                   await self.repo.device(fact.device_id))
            await self.repo.device_back(
                device_id=fact.device_id, occurred_at=at(fact.occurred_at), fact_seq=seq,
                data=data, rule_ids=[(str(uuid.uuid4()), r.id) for r in rules])

    async def alert(self, fact: AlertChanged, resolved: bool, seq: int) -> None:
        severity = str(fact.alert.get("severity", "warning"))
        await self.queue("alert_resolved" if resolved else "alert_opened", fact.device_id,
                         fact.occurred_at, fact.alert, seq, severity=severity)

    async def command(self, fact: CommandUpdated, seq: int) -> None:
        if fact.status != "timeout":
            return
        data = {"request_id": fact.request_id, "command": fact.command, "error": fact.error}
        await self.queue("command_timed_out", fact.device_id, fact.occurred_at, data, seq)

    async def rollout(self, fact: FirmwareRolloutUpdated, seq: int) -> None:
        # The rollout's own state (device_id None), not one of its devices' progress.
        if fact.state != "paused" or fact.device_id is not None:
            return
        data = {"rollout_id": fact.rollout_id, "version": fact.version, "state": fact.state,
                "counts": fact.counts}
        await self.queue("rollout_paused", None, fact.occurred_at, data, seq)

    async def queue(self, event: str, device_id: str | None, occurred_at: float,
                    data: dict[str, Any], seq: int, *, severity: str | None = None,
                    delay: timedelta = timedelta(0)) -> int:
        """Queue one delivery per matching rule; how many rules matched."""
        device = await self.repo.device(device_id) if device_id else None
        rules = await self.repo.matching_rules(event, device)
        if device_id is None:  # a rollout: no device, so no group or tag to match
            rules = [r for r in rules if isinstance(r.scope, AllDevices)]
        if severity is not None:
            rank = SEVERITY_RANK.get(severity, 1)
            rules = [r for r in rules if SEVERITY_RANK[r.min_severity] <= rank]
        when = at(occurred_at)
        for rule in rules:
            await self.repo.insert_delivery(
                delivery_id=str(uuid.uuid4()), rule_id=rule.id, fact_seq=seq, event=event,
                device_id=device_id, occurred_at=when, data=data,
                due_at=max(when + delay, datetime.now(UTC)))
        return len(rules)
