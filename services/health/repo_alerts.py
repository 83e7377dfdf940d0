"""Alerts in PostgreSQL: SQL as named constants, rows as msgspec Structs.

The unique partial index `uq_alerts_open (device_id, alert_type) WHERE resolved_at IS NULL` is
what keeps one open alert per device and type; every opening is an upsert on it, so replicas
racing on the same alert update one row instead of opening two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.health.repo import Conn
from services.health.schemas import Alert

ALERT_COLUMNS = """id, device_id, alert_type, severity, message, value, threshold, metadata,
    acknowledged, acknowledged_by, acknowledged_at, created_at, resolved_at, occurrence_count,
    last_seen_at, last_value, source"""

# A repeat only counts when it is newer than what the row has seen: a redelivered message
# (same time) changes nothing and returns no row.
UPSERT_ALERT = f"""
INSERT INTO alerts (device_id, alert_type, severity, message, value, threshold, metadata,
                    source, created_at, last_seen_at, last_value)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $5)
ON CONFLICT (device_id, alert_type) WHERE resolved_at IS NULL DO UPDATE SET
    occurrence_count = alerts.occurrence_count + 1,
    last_seen_at = EXCLUDED.last_seen_at,
    last_value = EXCLUDED.value,
    severity = EXCLUDED.severity,
    message = EXCLUDED.message,
    threshold = COALESCE(EXCLUDED.threshold, alerts.threshold),
    metadata = COALESCE(EXCLUDED.metadata, alerts.metadata)
WHERE alerts.last_seen_at < EXCLUDED.last_seen_at
RETURNING {ALERT_COLUMNS}, (xmax = 0) AS created"""

# An older "resolved" (redelivered late) never closes a newer episode of the condition.
RESOLVE_ALERT = f"""
UPDATE alerts SET resolved_at = $3
WHERE device_id = $1 AND alert_type = $2 AND resolved_at IS NULL AND last_seen_at <= $3
RETURNING {ALERT_COLUMNS}"""

# A rollout's alert is found by the rollout it names (literals, not parameters, so that the
# partial index of migration 002 serves every plan of the prepared statement).
RESOLVE_ROLLOUT_ALERTS = f"""
UPDATE alerts SET resolved_at = $2
WHERE alert_type = 'rollout_paused' AND metadata ->> 'rollout_id' = $1
  AND resolved_at IS NULL AND last_seen_at <= $2
RETURNING {ALERT_COLUMNS}"""
ROLLOUT_PAUSED = "rollout_paused"

ACKNOWLEDGE = f"""
UPDATE alerts SET acknowledged = TRUE, acknowledged_by = $2, acknowledged_at = now()
WHERE id = $1 AND NOT acknowledged
RETURNING {ALERT_COLUMNS}"""

GET_ALERT = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"

_ALERT_FILTER = """
WHERE ($1::text IS NULL OR device_id = $1)
  AND ($2::text IS NULL OR alert_type = $2)
  AND ($3::text IS NULL OR severity = $3)
  AND ($4::text IS NULL OR ($4 = 'open') = (resolved_at IS NULL))
  AND ($5::bool IS NULL OR acknowledged = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)"""
LIST_ALERTS = f"""
SELECT {ALERT_COLUMNS} FROM alerts {_ALERT_FILTER}
ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"""
COUNT_ALERTS = f"SELECT count(*) FROM alerts {_ALERT_FILTER}"

COUNT_OPEN_OF_DEVICE = "SELECT count(*) FROM alerts WHERE device_id = $1 AND resolved_at IS NULL"


def alert_of(row: asyncpg.Record) -> Alert:
    fields = dict(row)
    fields.pop("created", None)
    return Alert(**fields)


async def upsert(conn: Conn, args: tuple[Any, ...]) -> tuple[Alert, bool] | None:
    """(alert, created) for an opened or repeated alert; None for a stale repeat."""
    row = await conn.fetchrow(UPSERT_ALERT, *args)
    return (alert_of(row), bool(row["created"])) if row else None


async def resolve(conn: Conn, device_id: str, alert_type: str,
                  resolved_at: datetime) -> Alert | None:
    row = await conn.fetchrow(RESOLVE_ALERT, device_id, alert_type, resolved_at)
    return alert_of(row) if row else None


async def resolve_rollout(conn: Conn, rollout_id: str, resolved_at: datetime) -> list[Alert]:
    """Close the open `rollout_paused` alerts of a rollout (none when it has none)."""
    return [alert_of(r) for r in await conn.fetch(RESOLVE_ROLLOUT_ALERTS, rollout_id,
                                                    resolved_at)]


async def acknowledge(pool: Conn | asyncpg.Pool, alert_id: int, actor: str,
                      ) -> tuple[Alert | None, bool]:
    """(alert, newly acknowledged); (None, False) when there is no such alert."""
    row = await pool.fetchrow(ACKNOWLEDGE, alert_id, actor)
    if row is not None:
        return alert_of(row), True
    row = await pool.fetchrow(GET_ALERT, alert_id)
    return (alert_of(row) if row else None), False


async def list_alerts(pool: asyncpg.Pool, filters: tuple[Any, ...], limit: int, offset: int,
                      ) -> tuple[list[Alert], int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(LIST_ALERTS, *filters, limit, offset)
        total = await conn.fetchval(COUNT_ALERTS, *filters)
    return [alert_of(r) for r in rows], int(total)


async def count_open_of_device(pool: asyncpg.Pool, device_id: str) -> int:
    return int(await pool.fetchval(COUNT_OPEN_OF_DEVICE, device_id))
