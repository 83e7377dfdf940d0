"""The sweep in one statement: silent devices change state, those gone offline get their
`device_offline` alert, and the facts of both are stored in the outbox, in the database.

Measured with 20,000 of 100,000 devices changing in one sweep (bench/health_sweep.py, EXPLAIN
(ANALYZE, BUFFERS)): as three statements with the facts built in the service, ~600 ms, of which
the statements' own work was ~350 (the UPDATE ~65, the alerts' INSERT ~160 with ~55-75 for its
foreign-key checks, the outbox INSERT ~130) and the rest carrying 30,000 rows to the service
and 30,000 facts back. Here no row leaves the database (~400 ms), and each fact is one JSON
build: `to_json` of a row whose columns are named like the fact's fields.

Replicas sweeping at once stay safe as before: the UPDATE waits for a row another transaction
holds and checks the condition again on the row as it was left, so a change is made (and its
facts stored) once; the unique index of open alerts turns a second opening into nothing (no
alert, no fact). One transaction: a crash stores all of it or none.
"""

from __future__ import annotations

from libs.common.messages.events import SCHEMA_VERSION
from services.health.repo import Conn

# An alert's time as msgspec writes it for every other alert fact (UTC, microseconds, "Z"),
# whatever the session's TimeZone.
_UTC = """to_char({0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS {0}"""

# $1: degraded multiplier, $2: offline multiplier (larger), $3: alert type, $4: its message,
# $5 and $6: the subjects of a status change and of an opened alert with `*` (a NATS wildcard,
# never in a subject's own tokens) for the device.
# The devices table keeps no index for this WHERE (see migration 001): a partial index on
# last_seen measured 387 -> 617 ms for this sweep and made heartbeats' updates non-HOT.
# Facts are stored status changes first, then alerts (the relay publishes in id order, so a
# device's offline fact comes before its alert's). The sort of 30,000 facts spills ~10 MB to
# disk at the default work_mem; giving it 64 MB (SET LOCAL) measured no faster.
SWEEP = f"""
WITH changed AS (
    UPDATE devices SET
        previous_status = status,
        status = CASE WHEN last_seen < now() - heartbeat_interval * ($2::float8 * interval '1 s')
                      THEN 'offline' ELSE 'degraded' END,
        status_changed_at = now(),
        updated_at = now()
    WHERE status IN ('online', 'degraded')
      AND last_seen < now() - heartbeat_interval * ($1::float8 * interval '1 s')
      AND (status = 'online'
           OR last_seen < now() - heartbeat_interval * ($2::float8 * interval '1 s'))
    RETURNING device_id, previous_status, status, status_changed_at
), opened AS (
    INSERT INTO alerts (device_id, alert_type, severity, message, source, created_at,
                        last_seen_at)
    SELECT device_id, $3, 'warning', $4, 'console', now(), now()
    FROM changed WHERE status = 'offline'
    ON CONFLICT (device_id, alert_type) WHERE resolved_at IS NULL DO NOTHING
    RETURNING id, device_id, alert_type, severity, message, value, threshold, metadata,
        acknowledged, acknowledged_by, {_UTC.format('acknowledged_at')},
        {_UTC.format('created_at')}, {_UTC.format('resolved_at')}, occurrence_count,
        {_UTC.format('last_seen_at')}, last_value, source
), facts (rank, subject, fact, msg_id) AS (
    SELECT 1, replace($5, '*', c.device_id), to_json(f),
           'sweep:' || c.device_id || ':' || c.status || ':'
               || extract(epoch FROM c.status_changed_at)
    FROM changed c, LATERAL (  -- DeviceStatusChanged
        SELECT {SCHEMA_VERSION} AS schema_version, extract(epoch FROM now()) AS occurred_at,
               c.device_id, c.previous_status AS old_status, c.status AS new_status,
               'sweep' AS reason) f
    UNION ALL
    SELECT 2, replace($6, '*', a.device_id), to_json(f), 'alert:' || a.id || ':created'
    FROM opened a, LATERAL (  -- AlertChanged
        SELECT {SCHEMA_VERSION} AS schema_version, extract(epoch FROM now()) AS occurred_at,
               a.device_id, to_json(a) AS alert) f
), stored AS (
    INSERT INTO outbox (subject, payload, msg_id)
    SELECT subject, convert_to(fact::text, 'UTF8'), msg_id FROM facts ORDER BY rank
)
SELECT count(*) FROM changed"""


async def sweep(conn: Conn, degraded_multiplier: float, offline_multiplier: float, *,
                alert_type: str, message: str, status_subject: str,
                alert_subject: str) -> int:
    """Run the sweep in the caller's transaction; answer how many devices changed."""
    changed = await conn.fetchval(SWEEP, degraded_multiplier, offline_multiplier, alert_type,
                                  message, status_subject, alert_subject)
    return int(changed)
