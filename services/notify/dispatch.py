"""The delivery worker: bundle digests, claim due deliveries, send, record, retry or pause.

Each tick claims a batch (FOR UPDATE SKIP LOCKED with a lease, so replicas share the work and
never send one delivery twice at once) and sends it concurrently. A failed attempt that may be
retried (network, timeout, 408, 429, 5xx) is retried with exponential backoff and jitter until
24 h after the delivery was queued; each failed attempt counts against the rule, and a rule that
failed `pause_after_failures` attempts in a row is paused and reported (NotificationRulePaused).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from libs.common.messages.events import NotificationRulePaused
from services.notify.delivery import Outcome, Senders
from services.notify.repo import Repo
from services.notify.schemas import Outgoing

CLAIM_BATCH = 20
# Batches per tick at most, so that a backlog drains fast without starving the other jobs.
MAX_BATCHES_PER_TICK = 10
# Longer than a send can take (webhook and SMTP timeouts are 10 s): a lease that runs out means
# the replica that held it died.
LEASE_S = 60.0
RETRY_WINDOW_S = 24 * 3600.0
MAX_BACKOFF_S = 3600.0


class Channels(Protocol):
    async def rule_paused(self, fact: NotificationRulePaused) -> None: ...

    def attempted(self, target_kind: str, outcome: str) -> None: ...


def retry_delay_s(attempts: int, base_s: float) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, capped at an hour."""
    delay_s: float = min(MAX_BACKOFF_S, base_s * 2.0 ** max(0, attempts - 1))
    return delay_s / 2 + random.uniform(0, delay_s / 2)


class Dispatcher:
    def __init__(self, repo: Repo, senders: Senders, channels: Channels, *,
                 retry_base_s: float, pause_after_failures: int) -> None:
        self.repo = repo
        self.senders = senders
        self.channels = channels
        self.retry_base_s = retry_base_s
        self.pause_after_failures = pause_after_failures

    async def tick(self) -> int:
        """One round of the worker; how many deliveries were attempted."""
        await self.repo.expire_stale(RETRY_WINDOW_S)
        for rule_id in await self.repo.digest_rules_due():
            await self.repo.bundle(rule_id, str(uuid.uuid4()))
        attempted = 0
        for _ in range(MAX_BATCHES_PER_TICK):
            due = await self.repo.claim_due(CLAIM_BATCH, LEASE_S)
            await asyncio.gather(*(self.attempt(out) for out in due))
            attempted += len(due)
            if len(due) < CLAIM_BATCH:
                break
        return attempted

    async def attempt(self, out: Outgoing) -> None:
        outcome = await self.senders.send(out)
        if outcome.delivered:
            await self.repo.mark_delivered(out.id)
            self.channels.attempted(out.target_kind, "delivered")
            return
        retry_at = self.retry_at(out, outcome)
        error = outcome.error
        if outcome.retry and retry_at is None:
            error = f"{error}; gave up: not delivered within 24 h"
        self.channels.attempted(out.target_kind, "retry" if retry_at else "failed")
        rule = await self.repo.mark_failed(out.id, retry_at=retry_at, error=error)
        if rule is not None:
            await self.maybe_pause(*rule, last_error=error)

    def retry_at(self, out: Outgoing, outcome: Outcome) -> datetime | None:
        if not outcome.retry:
            return None
        when = datetime.now(UTC) + timedelta(seconds=retry_delay_s(out.attempts,
                                                                   self.retry_base_s))
        return when if when < out.created_at + timedelta(seconds=RETRY_WINDOW_S) else None

    async def maybe_pause(self, rule_id: str, name: str, state: str, failures: int, *,
                          last_error: str | None) -> None:
        if state != "active" or failures < self.pause_after_failures:
            return
        reason = (f"{failures} failed attempts in a row; last: {last_error}")[:500]
        if await self.repo.pause_rule(rule_id, reason) is None:
            return  # paused already (by another replica or an operator)
        await self.channels.rule_paused(NotificationRulePaused(
            occurred_at=time.time(), rule_id=rule_id, name=name, reason=reason,
            consecutive_failures=failures))
