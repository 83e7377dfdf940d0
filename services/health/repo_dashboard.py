"""Fleet aggregates for the dashboard: each a single aggregate query over indexed tables.

Heartbeats are not stored one by one; replicas add their per-minute tallies to
`heartbeat_minutes`, which the dashboard reads for its rate.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

# One scan for the state counts and the firmware versions.
DEVICES_BY_STATUS_AND_FIRMWARE = """
SELECT GROUPING(status) = 1 AS by_firmware, status,
       COALESCE(firmware_version, 'unknown') AS version, count(*)::int AS devices
FROM devices
GROUP BY GROUPING SETS ((status), (COALESCE(firmware_version, 'unknown')))"""

OPEN_ALERTS_BY_SEVERITY = """
SELECT severity, count(*)::int AS alerts FROM alerts WHERE resolved_at IS NULL GROUP BY severity"""

# Signal quality buckets (dBm): excellent >= -70, good >= -85, fair >= -100, poor below.
DEVICES_BY_CONNECTION_AND_SIGNAL = """
SELECT GROUPING(connection_type) = 1 AS by_signal, connection_type, quality,
       count(*)::int AS devices
FROM (SELECT COALESCE(connection_type, 'unknown') AS connection_type,
             CASE WHEN signal_strength IS NULL THEN 'unknown'
                  WHEN signal_strength >= -70 THEN 'excellent'
                  WHEN signal_strength >= -85 THEN 'good'
                  WHEN signal_strength >= -100 THEN 'fair'
                  ELSE 'poor' END AS quality
      FROM devices) d
GROUP BY GROUPING SETS ((connection_type), (quality))"""

HEARTBEATS_PER_MINUTE = """
SELECT m AS minute, COALESCE(h.heartbeats, 0)::bigint AS heartbeats
FROM generate_series(date_trunc('minute', now()) - interval '14 minutes',
                     date_trunc('minute', now()), interval '1 minute') m
LEFT JOIN heartbeat_minutes h ON h.minute = m
ORDER BY m"""

ALERTS_PER_DAY = """
SELECT d::date AS day, COALESCE(a.alerts, 0)::int AS alerts
FROM generate_series((now() AT TIME ZONE 'UTC')::date - 29, (now() AT TIME ZONE 'UTC')::date,
                     interval '1 day') d
LEFT JOIN alert_days a ON a.day = d::date
ORDER BY d"""

ADD_HEARTBEAT_TALLIES = """
INSERT INTO heartbeat_minutes (minute, heartbeats)
SELECT * FROM unnest($1::timestamptz[], $2::bigint[])
ON CONFLICT (minute) DO UPDATE
SET heartbeats = heartbeat_minutes.heartbeats + EXCLUDED.heartbeats"""

# The dashboard shows 15 minutes; a day is kept for whoever looks at the table by hand.
PRUNE_HEARTBEAT_TALLIES = "DELETE FROM heartbeat_minutes WHERE minute < now() - interval '1 day'"


async def summary(pool: asyncpg.Pool) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(devices by status, open alerts by severity, devices by firmware version)."""
    async with pool.acquire() as conn:
        devices = await conn.fetch(DEVICES_BY_STATUS_AND_FIRMWARE)
        alerts = await conn.fetch(OPEN_ALERTS_BY_SEVERITY)
    by_status = {r["status"]: r["devices"] for r in devices if not r["by_firmware"]}
    versions = sorted(((r["version"], r["devices"]) for r in devices if r["by_firmware"]),
                      key=lambda item: (-item[1], item[0]))
    return by_status, {r["severity"]: r["alerts"] for r in alerts}, dict(versions)


async def device_mix(pool: asyncpg.Pool) -> tuple[dict[str, int], dict[str, int]]:
    """(devices by connection type, devices by signal quality)."""
    by_connection: dict[str, int] = {}
    by_signal: dict[str, int] = {}
    for row in await pool.fetch(DEVICES_BY_CONNECTION_AND_SIGNAL):
        if row["by_signal"]:
            by_signal[row["quality"]] = row["devices"]
        else:
            by_connection[row["connection_type"]] = row["devices"]
    return by_connection, by_signal


async def heartbeats_per_minute(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [{"minute": r["minute"], "heartbeats": r["heartbeats"]}
            for r in await pool.fetch(HEARTBEATS_PER_MINUTE)]


async def alerts_per_day(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [{"day": r["day"], "alerts": r["alerts"]} for r in await pool.fetch(ALERTS_PER_DAY)]


async def add_heartbeat_tallies(pool: asyncpg.Pool, tallies: dict[datetime, int]) -> None:
    async with pool.acquire() as conn:
        await conn.execute(ADD_HEARTBEAT_TALLIES, list(tallies), list(tallies.values()))
        await conn.execute(PRUNE_HEARTBEAT_TALLIES)
