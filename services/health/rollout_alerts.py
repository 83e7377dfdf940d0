"""Console alerts for staged rollouts that the firmware service paused by itself.

The firmware service cannot write alerts; it publishes a `FirmwareRolloutUpdated` fact on every
change. The fact of a pause carries neither the reason nor a device (`device_id` is only set on
the facts of one device's progress), so on a pause this reads the rollout back from the firmware
service (`rollouts.get`): its reason tells a pause by an operator from a pause on failures, and
its devices name the failed device that tipped the threshold, which the alert is attached to
(alerts belong to a device). The alert closes when the rollout runs again, completes or is
cancelled. Facts of one input carry message ids from its stream sequence, and an alert is
counted again only by a newer pause, so redelivery publishes and counts nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import msgspec

from libs.common.messages.events import FirmwareRolloutUpdated
from libs.common.subjects import Subjects
from services.health import repo_alerts
from services.health.service import Facts, Publish, alert_fact, at, resolved_fact

log = logging.getLogger(__name__)

# How the firmware service words a pause by hand ("paused by <actor>"): no alert for those.
OPERATOR_PAUSE_PREFIX = "paused by "
RESOLVING_STATES = frozenset({"running", "completed", "cancelled"})
# A device's rollout states that count against the failure threshold (firmware's FAILED).
FAILED_DEVICE_STATES = frozenset({"failed", "rolled_back", "timed_out"})
SEVERITY = "critical"


class RolloutDevice(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    stage: int
    state: str
    updated_at: datetime


class RolloutView(msgspec.Struct, frozen=True, kw_only=True):
    """What health reads of the firmware service's `rollouts.get` answer."""

    id: str
    version: str
    state: str
    reason: str | None = None
    current_stage: int = 0
    devices: list[RolloutDevice] = msgspec.field(default_factory=list)


class SelfPause(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str
    reason: str


# The rollout as the firmware service has it now; None when it has no such rollout.
ReadRollout = Callable[[str], Awaitable[RolloutView | None]]


def self_pause(rollout: RolloutView | None) -> SelfPause | None:
    """The device and reason of a rollout paused on failures; None for anything else (an
    operator's pause, a rollout running again by now, no failed device to name)."""
    if rollout is None or rollout.state != "paused" or not rollout.reason:
        return None
    if rollout.reason.startswith(OPERATOR_PAUSE_PREFIX):
        return None
    failed = [d for d in rollout.devices if d.state in FAILED_DEVICE_STATES]
    in_stage = [d for d in failed if d.stage == rollout.current_stage] or failed
    if not in_stage:
        return None
    # The failure that tipped the threshold is the newest one of the stage that paused.
    tipping = max(in_stage, key=lambda d: d.updated_at)
    return SelfPause(device_id=tipping.device_id, reason=rollout.reason)


def pause_message(version: str, reason: str) -> str:
    return f"Rollout of firmware {version} paused: {reason}"


class RolloutAlerts:
    def __init__(self, pool: asyncpg.Pool, subjects: Subjects, publish: Publish,
                 read_rollout: ReadRollout) -> None:
        self.pool = pool
        self.subjects = subjects
        self._publish = publish
        self._read_rollout = read_rollout

    async def updated(self, fact: FirmwareRolloutUpdated, origin: str | None) -> str:
        """Apply one rollout fact; answer what it did (for the metric)."""
        if fact.state in RESOLVING_STATES:
            return "resolved" if await self._resolve(fact, origin) else "ignored"
        if fact.state != "paused" or fact.device_id is not None:
            return "ignored"  # a device's progress, not the pause itself
        pause = self_pause(await self._read_rollout(fact.rollout_id))
        if pause is None:
            return "ignored"
        try:
            return "opened" if await self._open(fact, pause, origin) else "ignored"
        except asyncpg.ForeignKeyViolationError:
            # Deleted since the rollout took it: nothing to attach the alert to.
            log.warning("rollout %s paused on %s, a device health does not know: no alert",
                        fact.rollout_id, pause.device_id)
            return "unknown_device"

    async def _open(self, fact: FirmwareRolloutUpdated, pause: SelfPause,
                    origin: str | None) -> bool:
        metadata = {"rollout_id": fact.rollout_id, "version": fact.version,
                    "counts": fact.counts}
        args = (pause.device_id, repo_alerts.ROLLOUT_PAUSED, SEVERITY,
                pause_message(fact.version, pause.reason), None, None, metadata, "console",
                at(fact.occurred_at))
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            outcome = await repo_alerts.upsert(conn, args)
            if outcome is None:
                return False  # this pause was counted already (a redelivery)
            alert_fact(self.subjects, facts, *outcome)
            await facts.publish()
        return True

    async def _resolve(self, fact: FirmwareRolloutUpdated, origin: str | None) -> bool:
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            resolved = await repo_alerts.resolve_rollout(conn, fact.rollout_id,
                                                         at(fact.occurred_at))
            for alert in resolved:
                resolved_fact(self.subjects, facts, alert)
            await facts.publish()
        return bool(resolved)
