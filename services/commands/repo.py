"""SQL of the commands service (schema `commands`): every statement a named constant.

A transition changes the command and records it in `command_events` in one statement (a CTE),
so that no status exists without its timestamped event; the sweeps are single statements too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from services.commands.schemas import Command, CommandEvent, ListCommands, Transition

COLUMNS = """request_id, device_id, command, params, status, progress, response, error,
    created_by, batch_id::text AS batch_id, ttl_s, timeout_s, created_at, expires_at, sent_at,
    acked_at, completed_at, updated_at"""
OPEN = "('pending', 'sent', 'ack')"
Connection = asyncpg.Connection | PoolConnectionProxy


def _transition(update: str) -> str:
    """`update` (an UPDATE ... RETURNING {COLUMNS}, or an INSERT) wrapped so that each changed
    command gets its event, whose detail is the statement's last parameter."""
    return f"""
WITH c AS ({update}),
e AS (INSERT INTO command_events (request_id, status, detail)
      SELECT request_id, status, $DETAIL::jsonb FROM c RETURNING id, request_id)
SELECT c.*, e.id AS event_id FROM c JOIN e USING (request_id) ORDER BY c.created_at"""


INSERT_COMMAND = _transition(f"""
    INSERT INTO commands (device_id, request_id, command, params, created_by, batch_id,
                          group_id, ttl_s, timeout_s, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6::uuid, $7::uuid, $8::integer, $9,
            now() + $8::integer * interval '1 second')
    RETURNING {COLUMNS}""").replace("$DETAIL", "$10")

# Queued commands of one device, oldest first, claimed for sending.
CLAIM_QUEUED = _transition(f"""
    UPDATE commands SET status = 'sent', sent_at = now(), updated_at = now(),
        deadline_at = now() + timeout_s * interval '1 second'
    WHERE request_id IN (
        SELECT request_id FROM commands
        WHERE device_id = $1 AND status = 'pending' AND expires_at > now()
        ORDER BY created_at FOR UPDATE SKIP LOCKED)
    RETURNING {COLUMNS}""").replace("$DETAIL", "$2")

# DeviceCommands (message id: the request id) that never left, of commands timed out.
DROP_UNSENT = "DELETE FROM outbox WHERE msg_id = ANY($1::text[])"

ACKNOWLEDGE = _transition(f"""
    UPDATE commands SET status = 'ack', acked_at = coalesce(acked_at, now()), updated_at = now()
    WHERE request_id = $1 AND device_id = $2 AND status IN ('pending', 'sent')
    RETURNING {COLUMNS}""").replace("$DETAIL", "$3")

# Progress keeps the command open: its deadline starts again (an OTA over GSM takes minutes).
PROGRESS = _transition(f"""
    UPDATE commands SET status = 'ack', acked_at = coalesce(acked_at, now()), progress = $3::real,
        deadline_at = now() + timeout_s * interval '1 second', updated_at = now()
    WHERE request_id = $1 AND device_id = $2 AND status IN {OPEN}
      AND progress IS DISTINCT FROM $3::real
    RETURNING {COLUMNS}""").replace("$DETAIL", "$4")

FINISH = _transition(f"""
    UPDATE commands SET status = $3::varchar, response = $4, error = $5, completed_at = now(),
        deadline_at = NULL, updated_at = now(),
        progress = CASE WHEN $3::varchar = 'success' AND progress IS NOT NULL THEN 100
                        ELSE progress END
    WHERE request_id = $1 AND device_id = $2 AND status IN {OPEN}
    RETURNING {COLUMNS}""").replace("$DETAIL", "$6")

CANCEL = _transition(f"""
    UPDATE commands SET status = 'cancelled', completed_at = now(), updated_at = now()
    WHERE request_id = $1 AND status = 'pending'
    RETURNING {COLUMNS}""").replace("$DETAIL", "$2")

TIME_OUT = _transition(f"""
    UPDATE commands SET status = 'timeout', completed_at = now(), deadline_at = NULL,
        updated_at = now(), error = 'no final answer within ' || timeout_s || ' s'
    WHERE status IN ('sent', 'ack') AND deadline_at < now()
    RETURNING {COLUMNS}""").replace("$DETAIL", "$1")

EXPIRE = _transition(f"""
    UPDATE commands SET status = 'expired', completed_at = now(), updated_at = now()
    WHERE status = 'pending' AND expires_at <= now()
    RETURNING {COLUMNS}""").replace("$DETAIL", "$1")

RECORD_EVENT = """
INSERT INTO command_events (request_id, status, detail) VALUES ($1, $2, $3) RETURNING id"""
LAST_TRANSITION_ID = """
SELECT max(e.id) FROM command_events e JOIN commands c USING (request_id)
WHERE e.request_id = $1 AND e.status = c.status"""
GET_COMMAND = f"SELECT {COLUMNS} FROM commands WHERE request_id = $1"
EVENTS_OF = """
SELECT id, request_id, status, at, detail FROM command_events WHERE request_id = $1 ORDER BY id"""
_FILTER = """
WHERE device_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR command = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)
"""
LIST_COMMANDS = f"""
SELECT {COLUMNS} FROM commands {_FILTER} ORDER BY created_at DESC, request_id LIMIT $6 OFFSET $7"""
COUNT_COMMANDS = f"SELECT count(*) FROM commands {_FILTER}"
BATCH_COUNTS = """
SELECT status, count(*) AS n, min(command) AS command FROM commands
WHERE batch_id = $1::uuid AND group_id = $2::uuid GROUP BY status"""
# Devices known online with commands waiting (the sweep that catches a missed flush).
DELIVERABLE_DEVICES = """
SELECT DISTINCT c.device_id FROM commands c JOIN device_connectivity d USING (device_id)
WHERE c.status = 'pending' AND c.expires_at > now() AND d.online"""

# Facts may arrive out of order (redelivery): an older fact never overwrites a newer one.
SET_CONNECTIVITY = """
INSERT INTO device_connectivity (device_id, online, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, updated_at = EXCLUDED.updated_at
WHERE device_connectivity.updated_at <= EXCLUDED.updated_at
RETURNING online"""
FORGET_CONNECTIVITY = "DELETE FROM device_connectivity WHERE device_id = $1 AND updated_at <= $2"
IS_ONLINE = "SELECT online FROM device_connectivity WHERE device_id = $1"

GET_CONFIG = """
SELECT desired, reported, desired_at, reported_at FROM device_configs WHERE device_id = $1"""
SET_DESIRED = """
INSERT INTO device_configs (device_id, desired, desired_at) VALUES ($1, $2, now())
ON CONFLICT (device_id) DO UPDATE SET desired = EXCLUDED.desired, desired_at = now()"""
SET_REPORTED = """
INSERT INTO device_configs (device_id, reported, reported_at) VALUES ($1, $2, now())
ON CONFLICT (device_id) DO UPDATE SET reported = EXCLUDED.reported, reported_at = now()"""
ADD_HISTORY = """
INSERT INTO device_config_history (device_id, kind, config, request_id, actor)
VALUES ($1, $2, $3, $4, $5)"""
HISTORY = """
SELECT kind, config, request_id, actor, at FROM device_config_history
WHERE device_id = $1 ORDER BY id DESC LIMIT $2"""
OPEN_SET_CONFIG = f"""
SELECT request_id FROM commands WHERE device_id = $1 AND command = 'set_config'
  AND status IN {OPEN} ORDER BY created_at DESC LIMIT 1"""


def _command(row: asyncpg.Record) -> Command:
    return msgspec.convert(dict(row), Command)


def _transitions(rows: list[asyncpg.Record]) -> list[Transition]:
    return [Transition(command=_command(row), event_id=row["event_id"]) for row in rows]


class Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, conn: Connection | None, *, device_id: str, request_id: str,
                     command: str, params: dict[str, Any], created_by: str | None,
                     ttl_s: int, timeout_s: int, batch_id: str | None = None,
                     group_id: str | None = None) -> Transition:
        db = conn or self.pool
        rows = await db.fetch(INSERT_COMMAND, device_id, request_id, command, params,
                              created_by, batch_id, group_id, ttl_s, timeout_s,
                              {"created_by": created_by})
        return _transitions(rows)[0]

    async def change(self, sql: str, *args: Any, conn: Connection | None = None,
                     ) -> list[Transition]:
        """Run a transition statement; the changed commands with their event ids."""
        return _transitions(await (conn or self.pool).fetch(sql, *args))

    async def drop_unsent(self, request_ids: list[str]) -> None:
        """Forget the DeviceCommands of these commands still waiting in the outbox."""
        if request_ids:
            await self.pool.execute(DROP_UNSENT, request_ids)

    async def record_event(self, request_id: str, status: str, detail: Any) -> int:
        event_id: int = await self.pool.fetchval(RECORD_EVENT, request_id, status, detail)
        return event_id

    async def last_transition_id(self, request_id: str) -> int | None:
        found: int | None = await self.pool.fetchval(LAST_TRANSITION_ID, request_id)
        return found

    async def get(self, request_id: str) -> Command | None:
        row = await self.pool.fetchrow(GET_COMMAND, request_id)
        return None if row is None else _command(row)

    async def events(self, request_id: str) -> list[CommandEvent]:
        rows = await self.pool.fetch(EVENTS_OF, request_id)
        return [msgspec.convert(dict(row), CommandEvent) for row in rows]

    async def page(self, q: ListCommands) -> tuple[list[Command], int]:
        args = (q.device_id, q.status, q.command, q.from_, q.to)
        rows = await self.pool.fetch(LIST_COMMANDS, *args, q.limit, q.offset)
        total: int = await self.pool.fetchval(COUNT_COMMANDS, *args)
        return [_command(row) for row in rows], total

    async def batch_counts(self, batch_id: str, group_id: str) -> tuple[dict[str, int], str | None]:
        rows = await self.pool.fetch(BATCH_COUNTS, batch_id, group_id)
        return {row["status"]: row["n"] for row in rows}, (rows[0]["command"] if rows else None)

    async def deliverable_devices(self) -> list[str]:
        return [row["device_id"] for row in await self.pool.fetch(DELIVERABLE_DEVICES)]

    async def set_connectivity(self, device_id: str, online: bool, at: datetime) -> bool:
        """Record the device's state; True when this fact was newer than what we knew."""
        return await self.pool.fetchval(SET_CONNECTIVITY, device_id, online, at) is not None

    async def forget_connectivity(self, device_id: str, at: datetime) -> None:
        await self.pool.execute(FORGET_CONNECTIVITY, device_id, at)

    async def is_online(self, device_id: str) -> bool:
        return bool(await self.pool.fetchval(IS_ONLINE, device_id))

    async def config(self, device_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(GET_CONFIG, device_id)

    async def set_desired(self, device_id: str, desired: dict[str, Any]) -> None:
        await self.pool.execute(SET_DESIRED, device_id, desired)

    async def set_reported(self, device_id: str, reported: dict[str, Any]) -> None:
        await self.pool.execute(SET_REPORTED, device_id, reported)

    async def add_history(self, conn: Connection | None, device_id: str, kind: str,
                          masked: dict[str, Any], request_id: str | None,
                          actor: str | None) -> None:
        await (conn or self.pool).execute(ADD_HISTORY, device_id, kind, masked, request_id, actor)

    async def history(self, device_id: str, limit: int) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.pool.fetch(HISTORY, device_id, limit)]

    async def open_set_config(self, device_id: str) -> str | None:
        found: str | None = await self.pool.fetchval(OPEN_SET_CONFIG, device_id)
        return found
