"""SQL of the notify service (schema `notify`): every statement a named constant.

The deliveries table is both the log the API shows and the outbox the worker sends from: a fact
inserts its deliveries idempotently (one per rule and stream sequence); the worker claims due
ones with FOR UPDATE SKIP LOCKED and a lease (replicas never send one twice at once; the lease
of a replica that died runs out and another sends it again, same delivery id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from services.notify.schemas import (
    AllDevices,
    Delivery,
    DeviceRef,
    EmailTarget,
    GroupScope,
    Outgoing,
    Rule,
    Scope,
    TagScope,
    Target,
    WebhookTarget,
)

RULE_COLUMNS = """id::text AS id, name, events, min_severity, scope_kind, group_id, tag,
    target_kind, url, addresses, digest_minutes, state, paused_reason, consecutive_failures,
    created_by, created_at, updated_at"""
DELIVERY_COLUMNS = """id::text AS id, rule_id::text AS rule_id, event, device_id, occurred_at,
    status, attempts, last_error, next_attempt_at, digest_id::text AS digest_id, created_at,
    delivered_at, updated_at"""
OUTGOING_COLUMNS = """d.id::text AS id, d.rule_id::text AS rule_id, d.event, d.device_id,
    d.occurred_at, d.data, d.attempts, d.created_at, r.target_kind, r.url, r.secret,
    r.addresses"""

# -- rules ----------------------------------------------------------------------------------------
INSERT_RULE = f"""
INSERT INTO rules (name, events, min_severity, scope_kind, group_id, tag, target_kind, url,
                   secret, addresses, digest_minutes, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {RULE_COLUMNS}"""
GET_RULE = f"SELECT {RULE_COLUMNS} FROM rules WHERE id = $1::uuid"
LIST_RULES = f"SELECT {RULE_COLUMNS} FROM rules ORDER BY created_at, id LIMIT $1 OFFSET $2"
COUNT_RULES = "SELECT count(*) FROM rules"
# A resumed rule starts counting failures afresh; $13 (a new secret) replaces the old one.
UPDATE_RULE = f"""
UPDATE rules SET name = $2, events = $3, min_severity = $4, scope_kind = $5, group_id = $6,
    tag = $7, target_kind = $8, url = $9, addresses = $10, digest_minutes = $11,
    state = $12::varchar,
    paused_reason = CASE WHEN $12::varchar = 'active' THEN NULL
                         WHEN state = 'active' THEN 'paused by an operator'
                         ELSE paused_reason END,
    consecutive_failures = CASE WHEN $12::varchar = 'active' AND state = 'paused' THEN 0
                                ELSE consecutive_failures END,
    secret = coalesce($13, secret), updated_at = now()
WHERE id = $1::uuid RETURNING {RULE_COLUMNS}"""
DELETE_RULE = "DELETE FROM rules WHERE id = $1::uuid RETURNING id"
# Rules that want this event for this device (severity is checked by the service).
MATCHING_RULES = f"""
SELECT {RULE_COLUMNS} FROM rules
WHERE $1 = ANY (events)
  AND (scope_kind = 'all'
       OR (scope_kind = 'group' AND group_id = $2)
       OR (scope_kind = 'tag' AND tag = ANY ($3::text[])))"""
# Paused once, by one replica: only the statement that changed the state reports it.
PAUSE_RULE = """
UPDATE rules SET state = 'paused', paused_reason = $2, updated_at = now()
WHERE id = $1::uuid AND state = 'active' RETURNING id::text AS id, name"""

# -- devices (from health's facts) ----------------------------------------------------------------
# Facts may arrive out of order (redelivery): an older fact never overwrites a newer one.
UPSERT_DEVICE = """
INSERT INTO devices (device_id, group_id, tags, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (device_id) DO UPDATE SET group_id = EXCLUDED.group_id, tags = EXCLUDED.tags,
    updated_at = EXCLUDED.updated_at
WHERE devices.updated_at <= EXCLUDED.updated_at"""
DELETE_DEVICE = "DELETE FROM devices WHERE device_id = $1 AND updated_at <= $2"
GET_DEVICE = "SELECT device_id, group_id, tags FROM devices WHERE device_id = $1"

# -- deliveries -----------------------------------------------------------------------------------
INSERT_DELIVERY = """
INSERT INTO deliveries (id, rule_id, fact_seq, event, device_id, occurred_at, data,
                        next_attempt_at)
VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8)
ON CONFLICT (rule_id, fact_seq) DO NOTHING"""
# Flapping: an offline notice not attempted yet is dropped when the device comes back.
CANCEL_UNSENT_OFFLINE = """
UPDATE deliveries SET status = 'cancelled', updated_at = now(),
    last_error = 'the device came back online within the quiet period'
WHERE device_id = $1 AND event = 'device_offline' AND status = 'pending' AND attempts = 0
  AND occurred_at <= $2"""
# The all-clear goes only where the offline notice went (attempted, delivered or in a digest).
INSERT_ONLINE_IF_OFFLINE_SENT = """
INSERT INTO deliveries (id, rule_id, fact_seq, event, device_id, occurred_at, data,
                        next_attempt_at)
SELECT $1::uuid, $2::uuid, $3::bigint, 'device_online', $4::varchar, $5::timestamptz, $6::jsonb,
       now()
WHERE EXISTS (
    SELECT 1 FROM (
        SELECT event, status, attempts FROM deliveries
        WHERE rule_id = $2::uuid AND device_id = $4::varchar
          AND event IN ('device_offline', 'device_online') AND occurred_at <= $5::timestamptz
        ORDER BY occurred_at DESC, created_at DESC LIMIT 1) AS last
    WHERE last.event = 'device_offline'
      AND (last.attempts > 0 OR last.status IN ('delivered', 'bundled')))
ON CONFLICT (rule_id, fact_seq) DO NOTHING"""
# Due (or abandoned by a replica that died) deliveries of active rules; a digest rule's
# single notices wait to be bundled.
CLAIM_DUE = f"""
WITH due AS (
    SELECT d.id FROM deliveries d JOIN rules r ON r.id = d.rule_id
    WHERE r.state = 'active'
      AND ((d.status = 'pending' AND d.next_attempt_at <= now())
           OR (d.status = 'sending' AND d.lease_until < now()))
      AND (r.digest_minutes = 0 OR d.event = 'digest' OR d.attempts > 0)
    ORDER BY d.next_attempt_at LIMIT $1
    FOR UPDATE OF d SKIP LOCKED)
UPDATE deliveries d SET status = 'sending', attempts = d.attempts + 1,
    lease_until = now() + $2 * interval '1 second', updated_at = now()
FROM due, rules r WHERE d.id = due.id AND r.id = d.rule_id
RETURNING {OUTGOING_COLUMNS}"""
MARK_DELIVERED = """
WITH d AS (
    UPDATE deliveries SET status = 'delivered', delivered_at = now(), last_error = NULL,
        lease_until = NULL, updated_at = now()
    WHERE id = $1::uuid AND status = 'sending' RETURNING rule_id)
UPDATE rules r SET consecutive_failures = 0 FROM d
WHERE r.id = d.rule_id AND r.consecutive_failures <> 0"""
# $2 'pending' (retried at $3) or 'failed' (final); the rule's failures in a row, answered.
MARK_FAILED = """
WITH d AS (
    UPDATE deliveries SET status = $2::varchar, next_attempt_at = coalesce($3, next_attempt_at),
        last_error = $4, lease_until = NULL, updated_at = now()
    WHERE id = $1::uuid AND status = 'sending' RETURNING rule_id)
UPDATE rules r SET consecutive_failures = r.consecutive_failures + 1 FROM d
WHERE r.id = d.rule_id
RETURNING r.id::text AS id, r.name, r.state, r.consecutive_failures"""
# Deliveries still waiting past the retry window (e.g. their rule stayed paused) are dropped.
EXPIRE_STALE = """
UPDATE deliveries SET status = 'failed', updated_at = now(),
    last_error = coalesce(last_error || '; ', '') || 'gave up: not delivered within the window'
WHERE status = 'pending' AND created_at < now() - $1 * interval '1 second'"""
# A test delivery: claimed at once, sent by the request, never retried.
INSERT_TEST = f"""
WITH d AS (
    INSERT INTO deliveries (id, rule_id, event, occurred_at, data, status, attempts,
                            next_attempt_at, lease_until)
    VALUES ($1::uuid, $2::uuid, 'test', now(), $3, 'sending', 1, now(),
            now() + interval '1 hour')
    RETURNING *)
SELECT {OUTGOING_COLUMNS} FROM d JOIN rules r ON r.id = d.rule_id"""
FINISH_TEST = """
UPDATE deliveries SET status = $2::varchar, last_error = $3, lease_until = NULL,
    updated_at = now(), delivered_at = CASE WHEN $2::varchar = 'delivered' THEN now() END
WHERE id = $1::uuid"""
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1::uuid"
_DELIVERY_FILTER = "WHERE rule_id = $1::uuid AND ($2::text IS NULL OR status = $2)"
LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries {_DELIVERY_FILTER}
ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"""
COUNT_DELIVERIES = f"SELECT count(*) FROM deliveries {_DELIVERY_FILTER}"

# -- digests --------------------------------------------------------------------------------------
_DIGEST_OPEN = ("(last_digest_at IS NULL "
                "OR last_digest_at <= now() - digest_minutes * interval '1 minute')")
_BUNDLEABLE = ("status = 'pending' AND event <> 'digest' AND attempts = 0 "
               "AND next_attempt_at <= now()")
DIGEST_RULES_DUE = f"""
SELECT r.id::text FROM rules r
WHERE r.state = 'active' AND r.digest_minutes > 0 AND {_DIGEST_OPEN}
  AND EXISTS (SELECT 1 FROM deliveries d WHERE d.rule_id = r.id AND {_BUNDLEABLE})"""
LOCK_DIGEST_RULE = f"""
SELECT id FROM rules WHERE id = $1::uuid AND {_DIGEST_OPEN} FOR UPDATE SKIP LOCKED"""
BUNDLE = f"""
UPDATE deliveries SET status = 'bundled', digest_id = $2::uuid, updated_at = now()
WHERE rule_id = $1::uuid AND {_BUNDLEABLE}
RETURNING id::text AS id, event, device_id, occurred_at, data"""
INSERT_DIGEST = """
INSERT INTO deliveries (id, rule_id, event, occurred_at, data, next_attempt_at)
VALUES ($2::uuid, $1::uuid, 'digest', now(), $3, now())"""
MARK_DIGESTED = "UPDATE rules SET last_digest_at = now() WHERE id = $1::uuid"


def _scope(row: asyncpg.Record) -> Scope:
    if row["scope_kind"] == "group":
        return GroupScope(group_id=row["group_id"])
    if row["scope_kind"] == "tag":
        return TagScope(tag=row["tag"])
    return AllDevices()


def _target(row: asyncpg.Record) -> Target:
    if row["target_kind"] == "email":
        return EmailTarget(addresses=list(row["addresses"] or []))
    return WebhookTarget(url=row["url"])


def _rule(row: asyncpg.Record, secret: str | None = None) -> Rule:
    fields = {k: row[k] for k in ("id", "name", "min_severity", "digest_minutes", "state",
                                  "paused_reason", "consecutive_failures", "created_by",
                                  "created_at", "updated_at")}
    return Rule(**fields, events=list(row["events"]), scope=_scope(row), target=_target(row),
                secret=secret)


def scope_columns(scope: Scope) -> tuple[str, str | None, str | None]:
    if isinstance(scope, GroupScope):
        return "group", scope.group_id, None
    if isinstance(scope, TagScope):
        return "tag", None, scope.tag
    return "all", None, None


def target_columns(target: Target) -> tuple[str, str | None, list[str] | None]:
    if isinstance(target, WebhookTarget):
        return "webhook", target.url, None
    return "email", None, list(target.addresses)


class Repo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- rules ------------------------------------------------------------------------------------
    async def insert_rule(self, *, name: str, events: list[str], min_severity: str,
                          scope: Scope, target: Target, secret: str | None,
                          digest_minutes: int, created_by: str | None) -> Rule:
        url_or_none, addresses = target_columns(target)[1:]
        row = await self.pool.fetchrow(
            INSERT_RULE, name, events, min_severity, *scope_columns(scope),
            target_columns(target)[0], url_or_none, secret, addresses, digest_minutes,
            created_by)
        assert row is not None
        return _rule(row, secret)

    async def get_rule(self, rule_id: str) -> Rule | None:
        row = await self.pool.fetchrow(GET_RULE, rule_id)
        return None if row is None else _rule(row)

    async def rules(self, limit: int, offset: int) -> tuple[list[Rule], int]:
        rows = await self.pool.fetch(LIST_RULES, limit, offset)
        total: int = await self.pool.fetchval(COUNT_RULES)
        return [_rule(row) for row in rows], total

    async def update_rule(self, rule: Rule, new_secret: str | None) -> Rule | None:
        kind, url, addresses = target_columns(rule.target)
        row = await self.pool.fetchrow(
            UPDATE_RULE, rule.id, rule.name, rule.events, rule.min_severity,
            *scope_columns(rule.scope), kind, url, addresses, rule.digest_minutes, rule.state,
            new_secret)
        return None if row is None else _rule(row, new_secret)

    async def delete_rule(self, rule_id: str) -> bool:
        return await self.pool.fetchval(DELETE_RULE, rule_id) is not None

    async def matching_rules(self, event: str, device: DeviceRef | None) -> list[Rule]:
        group_id = device.group_id if device else None
        tags = device.tags if device else []
        return [_rule(row) for row in await self.pool.fetch(MATCHING_RULES, event, group_id,
                                                            tags)]

    async def pause_rule(self, rule_id: str, reason: str) -> str | None:
        """Pause an active rule; its name when this call paused it."""
        row = await self.pool.fetchrow(PAUSE_RULE, rule_id, reason)
        return None if row is None else str(row["name"])

    # -- devices ----------------------------------------------------------------------------------
    async def upsert_device(self, device: DeviceRef, at: datetime) -> None:
        await self.pool.execute(UPSERT_DEVICE, device.device_id, device.group_id,
                                device.tags, at)

    async def delete_device(self, device_id: str, at: datetime) -> None:
        await self.pool.execute(DELETE_DEVICE, device_id, at)

    async def device(self, device_id: str) -> DeviceRef | None:
        row = await self.pool.fetchrow(GET_DEVICE, device_id)
        return None if row is None else DeviceRef(device_id=row["device_id"],
                                                  group_id=row["group_id"],
                                                  tags=list(row["tags"]))

    # -- deliveries -------------------------------------------------------------------------------
    async def insert_delivery(self, *, delivery_id: str, rule_id: str, fact_seq: int,
                              event: str, device_id: str | None, occurred_at: datetime,
                              data: dict[str, Any], due_at: datetime) -> None:
        await self.pool.execute(INSERT_DELIVERY, delivery_id, rule_id, fact_seq, event,
                                device_id, occurred_at, data, due_at)

    async def device_back(self, *, device_id: str, occurred_at: datetime, fact_seq: int,
                          data: dict[str, Any], rule_ids: list[tuple[str, str]]) -> None:
        """Cancel unsent offline notices and queue the all-clear (delivery id, rule id) where
        the offline notice went, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(CANCEL_UNSENT_OFFLINE, device_id, occurred_at)
            for delivery_id, rule_id in rule_ids:
                await conn.execute(INSERT_ONLINE_IF_OFFLINE_SENT, delivery_id, rule_id,
                                   fact_seq, device_id, occurred_at, data)

    async def claim_due(self, limit: int, lease_s: float) -> list[Outgoing]:
        rows = await self.pool.fetch(CLAIM_DUE, limit, lease_s)
        return [msgspec.convert(dict(row), Outgoing) for row in rows]

    async def mark_delivered(self, delivery_id: str) -> None:
        await self.pool.execute(MARK_DELIVERED, delivery_id)

    async def mark_failed(self, delivery_id: str, *, retry_at: datetime | None,
                          error: str | None) -> tuple[str, str, str, int] | None:
        """Record a failed attempt: (rule id, name, state, failures in a row) of its rule."""
        status = "pending" if retry_at is not None else "failed"
        row = await self.pool.fetchrow(MARK_FAILED, delivery_id, status, retry_at, error)
        if row is None:
            return None
        return row["id"], row["name"], row["state"], row["consecutive_failures"]

    async def expire_stale(self, window_s: float) -> int:
        done = await self.pool.execute(EXPIRE_STALE, window_s)
        return int(done.split()[-1])

    async def insert_test(self, delivery_id: str, rule_id: str,
                          data: dict[str, Any]) -> Outgoing:
        row = await self.pool.fetchrow(INSERT_TEST, delivery_id, rule_id, data)
        assert row is not None
        return msgspec.convert(dict(row), Outgoing)

    async def finish_test(self, delivery_id: str, delivered: bool, error: str | None) -> None:
        await self.pool.execute(FINISH_TEST, delivery_id,
                                "delivered" if delivered else "failed", error)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        row = await self.pool.fetchrow(GET_DELIVERY, delivery_id)
        return None if row is None else msgspec.convert(dict(row), Delivery)

    async def deliveries(self, rule_id: str, status: str | None, limit: int,
                         offset: int) -> tuple[list[Delivery], int]:
        rows = await self.pool.fetch(LIST_DELIVERIES, rule_id, status, limit, offset)
        total: int = await self.pool.fetchval(COUNT_DELIVERIES, rule_id, status)
        return [msgspec.convert(dict(row), Delivery) for row in rows], total

    # -- digests ----------------------------------------------------------------------------------
    async def digest_rules_due(self) -> list[str]:
        return [row["id"] for row in await self.pool.fetch(DIGEST_RULES_DUE)]

    async def bundle(self, rule_id: str, digest_id: str) -> list[dict[str, Any]]:
        """Bundle the rule's due notices into one digest delivery (nothing when another
        replica holds the rule or its window is closed); the bundled notices."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(LOCK_DIGEST_RULE, rule_id) is None:
                return []
            rows = await conn.fetch(BUNDLE, rule_id, digest_id)
            if not rows:
                return []
            items = [dict(row) for row in rows]
            await conn.execute(INSERT_DIGEST, rule_id, digest_id,
                               {"count": len(items), "events": _digest_items(items)})
            await conn.execute(MARK_DIGESTED, rule_id)
            return items


def _digest_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": i["id"], "event": i["event"], "device_id": i["device_id"],
             "occurred_at": i["occurred_at"].isoformat(), "data": i["data"]}
            for i in sorted(items, key=lambda i: i["occurred_at"])]
