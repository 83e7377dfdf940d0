"""A transactional outbox: messages stored with a state change, published to JetStream after.

A service that must publish because of a change it commits adds the message to its `outbox`
table inside the same transaction (`Outbox.add`), so the change and the message exist together
or not at all. A relay (`Outbox.relay_once`, run every fraction of a second and nudged after a
commit) publishes the rows in id order, each with `Nats-Msg-Id` = its msg_id, and deletes them
in the transaction that locked them, after JetStream acked. A crash between the publish and the
delete publishes the row again, which the stream's duplicate window (120 s) drops. A failed
publish (NATS or the stream unreachable) stops the batch: the rows stay for the next run.

One relay at a time per schema (an advisory lock): replicas never publish a row twice nor out
of order. Each service creates the table with a migration `NNN_create_outbox.sql`:

    CREATE TABLE outbox (id BIGSERIAL PRIMARY KEY, subject TEXT NOT NULL,
        payload BYTEA NOT NULL, msg_id TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now());
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from nats.js import JetStreamContext
from prometheus_client import Counter

log = logging.getLogger(__name__)

Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
# (subject, payload, msg_id)
Row: TypeAlias = tuple[str, bytes, str]

# Rows published per transaction: pipelined publishes, then one DELETE.
BATCH_ROWS = 500
# How long a publish waits for JetStream's ack before the batch stops (s).
PUBLISH_TIMEOUT_S = 3.0
# The relay period services register with `rt.every` (s); a nudge after a commit is sooner.
RELAY_PERIOD_S = 0.25

ANY_ROWS = "SELECT EXISTS (SELECT 1 FROM outbox)"
INSERT_ROW = "INSERT INTO outbox (subject, payload, msg_id) VALUES ($1, $2, $3)"
# Array order is insertion (id) order.
INSERT_ROWS = """
INSERT INTO outbox (subject, payload, msg_id)
SELECT subject, payload, msg_id
FROM unnest($1::text[], $2::bytea[], $3::text[]) WITH ORDINALITY AS r(subject, payload, msg_id, n)
ORDER BY n"""
# Keyed by the schema (search_path) so that each service's outbox has its own relay lock.
RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))"
TAKE_ROWS = """
SELECT id, subject, payload, msg_id FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
DELETE_ROWS = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

PUBLISHED = Counter("acuvim_outbox_published_total", "Outbox rows published to JetStream")
FAILURES = Counter("acuvim_outbox_failures_total", "Outbox relay runs stopped by a failure")


class Outbox:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, *,
                 batch_rows: int = BATCH_ROWS,
                 publish_timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self.pool = pool
        self.js = js
        self.batch_rows = batch_rows
        self.publish_timeout_s = publish_timeout_s
        self._running = asyncio.Lock()
        self._nudged: asyncio.Task[int] | None = None
        self._again = False
        self._failing = False

    @staticmethod
    async def add(conn: Conn, subject: str, payload: bytes, msg_id: str) -> None:
        """Store one message in the caller's transaction."""
        await conn.execute(INSERT_ROW, subject, payload, msg_id)

    @staticmethod
    async def add_many(conn: Conn, rows: Sequence[Row]) -> None:
        """Store messages in the caller's transaction, in this order, in one statement."""
        if rows:
            subjects, payloads, msg_ids = zip(*rows, strict=True)
            await conn.execute(INSERT_ROWS, list(subjects), list(payloads), list(msg_ids))

    def nudge(self) -> None:
        """Relay soon (after a commit) rather than at the next period; never blocks."""
        if self._nudged is None or self._nudged.done():
            self._nudged = asyncio.create_task(self._relay_nudged())
        else:
            self._again = True

    async def _relay_nudged(self) -> int:
        published = 0
        while True:
            self._again = False
            try:
                published += await self.relay_once()
            except Exception as exc:  # the periodic run retries; a nudge must not crash
                log.warning("outbox relay failed: %r", exc)
            if not self._again:
                return published

    async def relay_once(self) -> int:
        """Publish what waits, batch by batch, until empty or a failure; answer rows published."""
        async with self._running:
            if not await self.pool.fetchval(ANY_ROWS):
                return 0
            published = 0
            while True:
                done, more = await self._relay_batch()
                published += done
                if not more:
                    return published

    async def _relay_batch(self) -> tuple[int, bool]:
        """(rows published, whether to go on)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(RELAY_LOCK):
                return 0, False  # another replica is relaying
            rows = await conn.fetch(TAKE_ROWS, self.batch_rows)
            acked, error = await self._publish(rows)
            if acked:
                await conn.execute(DELETE_ROWS, acked)
        PUBLISHED.inc(len(acked))
        self._report(error, len(rows) - len(acked))
        return len(acked), error is None and len(rows) == self.batch_rows

    async def _publish(self, rows: list[asyncpg.Record],
                       ) -> tuple[list[int], BaseException | None]:
        """Publish pipelined (one connection keeps their order); the ids acked, the first
        error. Rows after a failed one that were acked anyway are deleted too (their
        re-publish would be a duplicate), the failed ones stay."""
        results = await asyncio.gather(
            *(self.js.publish(r["subject"], r["payload"], timeout=self.publish_timeout_s,
                              headers={"Nats-Msg-Id": r["msg_id"]}) for r in rows),
            return_exceptions=True)
        acked = [r["id"] for r, result in zip(rows, results, strict=True)
                 if not isinstance(result, BaseException)]
        errors = [result for result in results if isinstance(result, BaseException)]
        for error in errors:
            if not isinstance(error, Exception):
                raise error  # cancellation: the transaction rolls back, the rows stay
        return acked, errors[0] if errors else None

    def _report(self, error: BaseException | None, kept: int) -> None:
        """One warning when publishing starts failing and one line when it recovers."""
        if error is None:
            if self._failing:
                log.info("outbox relay publishes again")
            self._failing = False
            return
        FAILURES.inc()
        if not self._failing:
            log.warning("outbox relay: %d rows kept for later: %r", kept, error)
        self._failing = True

