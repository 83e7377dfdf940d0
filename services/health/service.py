"""The health domain for device input: registrations, heartbeats, status reports, device alerts,
and the sweep that turns silence into degraded and offline.

Facts are published inside the database transaction, before it commits, with message ids
derived from the JetStream sequence of the input: a failed publish rolls the change back (the
input comes again), and a redelivery after a commit that the ack missed publishes nothing twice.
Input older than what a device's row has seen (redelivered, or overtaken) changes nothing.
The sweep has no input to be redelivered: its facts are stored in the outbox inside its
transaction (by the sweep's one statement, repo_sweep.py) and published by the relay after
the commit.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from libs.common.codec import to_builtins
from libs.common.messages.device import DeviceAlert, DeviceRegistration, Heartbeat, StatusReport
from libs.common.messages.events import (
    AlertChanged,
    DeviceRegistered,
    DeviceStatusChanged,
    HeartbeatReceived,
)
from libs.common.outbox import Outbox
from libs.common.subjects import Subjects
from services.health import anomalies, repo, repo_alerts, repo_dashboard, repo_sweep
from services.health.repo import Conn
from services.health.schemas import Alert, Device

log = logging.getLogger(__name__)

Publish = Callable[[str, Any, str | None], Awaitable[None]]
INT32_MAX = 2**31 - 1


def at(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def clip(value: str | None, length: int) -> str | None:
    """Device strings longer than their column are cut, not refused: the rest is still good."""
    return value[:length] if value is not None else None


def int32(value: int | None) -> int | None:
    """A counter out of the column's range is dropped rather than failing the whole message."""
    return value if value is None or -INT32_MAX <= value <= INT32_MAX else None


class Facts:
    """Facts gathered during one input's transaction, published together before it commits."""

    def __init__(self, publish: Publish, origin: str | None) -> None:
        self._publish = publish
        self._origin = origin
        self._pending: list[tuple[str, Any, str]] = []

    def add(self, subject: str, fact: Any, key: str = "") -> None:
        self._pending.append((subject, fact, key))

    async def publish(self) -> None:
        for subject, fact, key in self._pending:
            msg_id = f"{self._origin}:{subject}:{key}" if self._origin else None
            await self._publish(subject, fact, msg_id)


def alert_fact(subjects: Subjects, facts: Facts, alert: Alert, created: bool) -> None:
    """The fact of an alert opened (created) or counted again (updated)."""
    subject = (subjects.alert_created if created else subjects.alert_updated)(alert.device_id)
    facts.add(subject, AlertChanged(occurred_at=time.time(), device_id=alert.device_id,
                                    alert=to_builtins(alert)), alert.alert_type)


def resolved_fact(subjects: Subjects, facts: Facts, alert: Alert) -> None:
    facts.add(subjects.alert_resolved(alert.device_id),
              AlertChanged(occurred_at=time.time(), device_id=alert.device_id,
                           alert=to_builtins(alert)), alert.alert_type)


class HeartbeatTally:
    """Heartbeats counted per minute in memory, added to the table now and then."""

    def __init__(self) -> None:
        self._counts: Counter[datetime] = Counter()

    def count(self, when: datetime) -> None:
        self._counts[when.replace(second=0, microsecond=0)] += 1

    def take(self) -> dict[datetime, int]:
        taken, self._counts = dict(self._counts), Counter()
        return taken


class DeviceInput:
    def __init__(self, pool: asyncpg.Pool, subjects: Subjects, publish: Publish, *,
                 degraded_multiplier: float, offline_multiplier: float,
                 outbox: Outbox | None = None) -> None:
        self.pool = pool
        self.subjects = subjects
        self._publish = publish
        # The sweep stores its facts in the table `outbox` with its changes; this relay is
        # nudged after the commit (without one, e.g. in a benchmark, they wait there).
        self.outbox = outbox
        self.degraded_multiplier = degraded_multiplier
        self.offline_multiplier = offline_multiplier
        self.tally = HeartbeatTally()

    # -- registration --------------------------------------------------------------------------
    async def register(self, reg: DeviceRegistration, origin: str | None) -> None:
        args = (reg.device_id, clip(reg.mac_address, 17), clip(reg.imei, 15),
                clip(reg.iccid, 20), clip(reg.hardware, 64), clip(reg.firmware_version, 16),
                reg.capabilities, reg.heartbeat_interval, reg.meter)
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            device, inserted = await repo.upsert_registration(conn, args)
            self._registered(facts, device, inserted)
            await facts.publish()

    def _registered(self, facts: Facts, device: Device, first_seen: bool) -> None:
        facts.add(self.subjects.device_registered(device.device_id), DeviceRegistered(
            occurred_at=time.time(), device_id=device.device_id, first_seen=first_seen,
            device=to_builtins(device)))

    # -- heartbeats ----------------------------------------------------------------------------
    async def heartbeat(self, hb: Heartbeat, origin: str | None) -> None:
        seen_at = at(hb.received_at)
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            prev, created = await repo.lock_device(conn, hb.device_id)
            if prev.last_seen is not None and seen_at <= prev.last_seen:
                return  # already applied, or older than what the device said since
            if created:
                self._registered(facts, prev, True)
            device = await repo.apply_heartbeat(conn, self._heartbeat_args(hb, seen_at))
            await self._status_changed(conn, facts, prev, device, "heartbeat")
            await self._findings(conn, facts, hb, anomalies.heartbeat_findings(prev, hb))
            facts.add(self.subjects.heartbeat_received(hb.device_id), HeartbeatReceived(
                occurred_at=time.time(), device_id=hb.device_id, heartbeat=hb))
            await facts.publish()
        self.tally.count(seen_at)

    @staticmethod
    def _heartbeat_args(hb: Heartbeat, seen_at: datetime) -> tuple[Any, ...]:
        return (hb.device_id, at(hb.ts), seen_at, hb.clock_unsynced,
                clip(hb.firmware_version, 16), clip(hb.connection_type, 8),
                int32(hb.signal_strength), clip(hb.ip_address, 45), int32(hb.boot_count),
                int32(hb.free_heap), int32(hb.min_free_heap), clip(hb.reset_reason, 16),
                hb.modbus_ok, int32(hb.modbus_errors), int32(hb.sd_buffered), hb.uptime_s,
                hb.heartbeat_interval)

    async def _findings(self, conn: Conn, facts: Facts, hb: Heartbeat,
                        findings: anomalies.Findings) -> None:
        for opening in findings.opened:
            args = (hb.device_id, opening.alert_type, opening.severity, opening.message,
                    opening.value, opening.threshold, opening.metadata, "console",
                    at(hb.received_at))
            outcome = await repo_alerts.upsert(conn, args)
            if outcome is not None:
                self._alert_fact(facts, *outcome)
        for alert_type in findings.cleared:
            await self._resolve(conn, facts, hb.device_id, alert_type, at(hb.received_at))

    # -- status topic --------------------------------------------------------------------------
    async def status(self, report: StatusReport, origin: str | None) -> None:
        received = at(report.received_at)
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            prev, created = await repo.lock_device(conn, report.device_id)
            if prev.last_seen is not None and (
                    received < prev.last_seen
                    or (received == prev.last_seen and report.status == "online")):
                return  # the device has said something newer since
            if created:
                self._registered(facts, prev, True)
            device = await repo.set_status(conn, report.device_id, report.status, received,
                                           clip(report.connection_type, 8))
            await self._status_changed(conn, facts, prev, device, "status_topic")
            await facts.publish()

    async def _status_changed(self, conn: Conn, facts: Facts, prev: Device,
                              device: Device, reason: str) -> None:
        if prev.status == device.status:
            return
        facts.add(self.subjects.device_status_changed(device.device_id), DeviceStatusChanged(
            occurred_at=time.time(), device_id=device.device_id, old_status=prev.status,
            new_status=device.status, reason=reason))
        if device.status == "online":
            await self._resolve(conn, facts, device.device_id, anomalies.DEVICE_OFFLINE,
                                datetime.now(UTC))

    # -- device alerts -------------------------------------------------------------------------
    async def device_alert(self, alert: DeviceAlert, origin: str | None) -> None:
        facts = Facts(self._publish, origin)
        async with self.pool.acquire() as conn, conn.transaction():
            prev, created = await repo.lock_device(conn, alert.device_id)
            if created:
                self._registered(facts, prev, True)
            if alert.state == "resolved":
                await self._resolve(conn, facts, alert.device_id, alert.alert_type, at(alert.ts))
            else:
                args = (alert.device_id, alert.alert_type, alert.severity,
                        alert.message or alert.alert_type, alert.value, alert.threshold,
                        alert.metadata, "device", at(alert.ts))
                outcome = await repo_alerts.upsert(conn, args)
                if outcome is not None:
                    self._alert_fact(facts, *outcome)
            await facts.publish()

    async def _resolve(self, conn: Conn, facts: Facts, device_id: str,
                       alert_type: str, when: datetime) -> None:
        resolved = await repo_alerts.resolve(conn, device_id, alert_type, when)
        if resolved is not None:
            resolved_fact(self.subjects, facts, resolved)

    def _alert_fact(self, facts: Facts, alert: Alert, created: bool) -> None:
        alert_fact(self.subjects, facts, alert, created)

    # -- sweep ---------------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Mark silent devices offline, then degraded, open their offline alerts and store the
        facts of both in the outbox, in one transaction; answer how many devices changed."""
        async with self.pool.acquire() as conn, conn.transaction():
            changed = await self.sweep_in(conn)
        if self.outbox is not None and changed:
            self.outbox.nudge()
        return changed

    async def sweep_in(self, conn: Conn) -> int:
        """The sweep in the caller's transaction; answer how many devices changed."""
        return await repo_sweep.sweep(
            conn, self.degraded_multiplier, self.offline_multiplier,
            alert_type=anomalies.DEVICE_OFFLINE, message=anomalies.DEVICE_OFFLINE_MESSAGE,
            status_subject=self.subjects.device_status_changed("*"),
            alert_subject=self.subjects.alert_created("*"))

    async def flush_tally(self) -> None:
        tallies = self.tally.take()
        if tallies:
            await repo_dashboard.add_heartbeat_tallies(self.pool, tallies)
