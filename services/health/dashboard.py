"""The fleet dashboard: a summary and aggregate statistics, from single aggregate queries."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.health import repo_dashboard
from services.health.schemas import Stats, Summary

log = logging.getLogger(__name__)

TelemetryStats = Callable[[], Awaitable[Any]]
SEVERITIES = ("info", "warning", "critical")
SIGNAL_QUALITIES = ("excellent", "good", "fair", "poor", "unknown")


class Dashboard:
    def __init__(self, pool: asyncpg.Pool, telemetry_stats: TelemetryStats) -> None:
        self.pool = pool
        self._telemetry_stats = telemetry_stats

    async def summary(self) -> Summary:
        by_status, alerts, versions = await repo_dashboard.summary(self.pool)
        return Summary(total=sum(by_status.values()), online=by_status.get("online", 0),
                       degraded=by_status.get("degraded", 0),
                       offline=by_status.get("offline", 0),
                       open_alerts={s: alerts.get(s, 0) for s in SEVERITIES},
                       firmware_versions=versions)

    async def stats(self) -> Stats:
        by_connection, by_signal = await repo_dashboard.device_mix(self.pool)
        return Stats(
            heartbeats_per_minute=await repo_dashboard.heartbeats_per_minute(self.pool),
            devices_by_connection_type=by_connection,
            devices_by_signal_quality={q: by_signal.get(q, 0) for q in SIGNAL_QUALITIES},
            alerts_per_day=await repo_dashboard.alerts_per_day(self.pool),
            telemetry_messages_per_minute=await self._telemetry_rate())

    async def _telemetry_rate(self) -> float | None:
        """The telemetry service's rate; null when it cannot say (the rest still answers)."""
        try:
            answer = await self._telemetry_stats()
            rate = answer.get("messages_per_minute") if isinstance(answer, dict) else None
            return float(rate) if isinstance(rate, int | float) else None
        except Exception as exc:
            log.info("telemetry stats unavailable: %r", exc)
            return None
