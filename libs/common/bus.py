"""NATS and JetStream: connect, declare streams idempotently, publish facts, consume durably.

Delivery is at least once: a consumed message is acknowledged only after its handler returned;
a handler that fails for a transient reason (database or bus down) gets the message again after
a delay; a message that can never be handled (invalid, or redelivered too often) goes to the
dead-letter stream with its reason and is terminated, so it never blocks the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from libs.common import metrics
from libs.common.codec import encode
from libs.common.errors import ConsoleError
from libs.common.settings import SettingsError
from libs.common.subjects import DEVICE_IN_MAX_AGE_S, EVENTS_MAX_AGE_S, Subjects

log = logging.getLogger(__name__)

# A handler that takes longer than this is presumed dead and its message redelivered.
ACK_WAIT_S = 60.0
# After this many deliveries a message is poison: dead-lettered, never retried again.
MAX_DELIVER = 20
# Redelivery delay after a transient failure (database down, bus hiccup).
RETRY_DELAY_S = 2.0
# Dead letters are kept this long for an operator to inspect.
DEAD_MAX_AGE_S = 14 * 24 * 3600
# JetStream's error code for a stream update that changes the retention policy (NATS < 2.10).
RETENTION_CHANGE_REFUSED = 10052
# JetStream's max_bytes for "no byte limit".
NO_LIMIT = -1
# JetStream's error code for a stream whose max_bytes its storage cannot reserve.
STORAGE_REFUSED = 10047


async def connect(url: str, name: str) -> NATS:
    """Connect with endless reconnects: a NATS restart is an outage to ride out, not a crash."""

    async def on_disconnect() -> None:
        log.warning("nats disconnected", extra={"url": url})
        metrics.BUS_DISCONNECTS.inc()

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"url": url})

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    return await nats.connect(
        servers=[url],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=3,
        allow_reconnect=True,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )


def stream_configs(subjects: Subjects, replicas: int = 1, *,
                   device_max_age_s: int = DEVICE_IN_MAX_AGE_S,
                   device_max_bytes: int = NO_LIMIT) -> list[StreamConfig]:
    """The console's streams; `replicas` > 1 on a NATS cluster (ACUVIM_JETSTREAM_REPLICAS).
    `device_max_age_s` bounds DEVICE_IN and DEVICE_OUT on the NATS server's disk
    (ACUVIM_DEVICE_IN_RETENTION_HOURS), `device_max_bytes` DEVICE_IN alone (ACUVIM_DEVICE_IN_MAX_GB;
    -1: no byte limit): NATS reserves a cap up front, and DEVICE_OUT only carries commands."""
    # Device input and output keep every message for max_age, consumed or not (LIMITS), not
    # only while a consumer still owes an ack (INTEREST): NATS 2.9 recovers consumers one by
    # one after a restart and drops every message the ones recovered first had acked, also
    # those a later one (telemetry) had not received yet; and an INTEREST stream drops what
    # arrives while no consumer exists. The price is disk: max_age of device traffic, or
    # max_bytes. Past either the oldest go (discard OLD): with discard NEW a stream full of
    # messages consumed long ago would refuse every publish until they aged out.
    configs = [
        StreamConfig(
            name=subjects.device_in_stream, subjects=[subjects.device_in_all],
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            max_age=device_max_age_s, max_bytes=device_max_bytes, discard=DiscardPolicy.OLD,
            duplicate_window=120,
        ),
        StreamConfig(
            name=subjects.device_out_stream, subjects=[subjects.device_out_all],
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            max_age=device_max_age_s, discard=DiscardPolicy.OLD, duplicate_window=120,
        ),
        StreamConfig(
            name=subjects.events_stream, subjects=list(subjects.events_all),
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            max_age=EVENTS_MAX_AGE_S, discard=DiscardPolicy.OLD, duplicate_window=120,
        ),
        StreamConfig(
            name=subjects.dead_stream, subjects=[subjects.dead_letter],
            retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
            max_age=DEAD_MAX_AGE_S, discard=DiscardPolicy.OLD,
        ),
    ]
    for config in configs:
        config.num_replicas = replicas
    return configs


async def declare_streams(js: JetStreamContext, subjects: Subjects, replicas: int = 1, *,
                          device_max_age_s: int = DEVICE_IN_MAX_AGE_S,
                          device_max_bytes: int = NO_LIMIT) -> None:
    """Create or update the console's streams; safe to call from every service at start.
    An existing stream takes changed limits in place (a lower one drops its oldest at once)."""
    configs = stream_configs(subjects, replicas, device_max_age_s=device_max_age_s,
                             device_max_bytes=device_max_bytes)
    for config in configs:
        try:
            await _declare(js, config)
        except nats.js.errors.APIError as exc:
            if exc.err_code != STORAGE_REFUSED or config.max_bytes in (None, NO_LIMIT):
                raise
            # Not a dependency that is down (retried) but a setting NATS cannot honour.
            raise SettingsError(
                f"ACUVIM_DEVICE_IN_MAX_GB: NATS cannot reserve {config.max_bytes} bytes for "
                f"stream {config.name} ({exc.description}): lower it or give JetStream more "
                "storage (max_file_store)") from None


async def _declare(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:
        try:
            await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            if exc.err_code != RETENTION_CHANGE_REFUSED:
                raise
            # NATS < 2.10 cannot change it in place; the services still run on the old
            # stream, and an operator migrates it (README, Reliability).
            log.error("stream %s keeps its old retention policy: %s (NATS >= 2.10 "
                      "changes it in place)", config.name, exc.description)


async def publish_fact(js: JetStreamContext, subject: str, fact: Any,
                       msg_id: str | None = None) -> None:
    """Publish a fact to the EVENTS stream; `msg_id` makes a retried publish land once."""
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await js.publish(subject, encode(fact), headers=headers)


BatchHandler = Callable[[Sequence[Msg]], Awaitable[None]]


class DurableConsumer:
    """A durable pull consumer handled in batches, shared by all replicas of a service.

    The handler receives up to `batch_size` messages and must ack (or term) each one it has
    finished with; messages it leaves alone are acked when it returns. When it raises, every
    message it left alone is nak'ed with a delay, to be delivered again (to any replica).
    """

    def __init__(self, js: JetStreamContext, *, stream: str, durable: str,
                 filter_subjects: Sequence[str], handler: BatchHandler, batch_size: int = 100,
                 fetch_timeout_s: float = 1.0, deliver_new: bool = False,
                 ack_wait_s: float = ACK_WAIT_S) -> None:
        self.js = js
        self.stream = stream
        self.durable = durable
        self.filter_subjects = list(filter_subjects)
        self.handler = handler
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.deliver_policy = DeliverPolicy.NEW if deliver_new else DeliverPolicy.ALL
        self.ack_wait_s = ack_wait_s
        self._stopping = asyncio.Event()
        self._pending = metrics.BUS_CONSUMER_PENDING.labels(stream=stream, consumer=durable)

    async def ensure(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=self.deliver_policy, ack_wait=self.ack_wait_s,
            max_deliver=MAX_DELIVER + 1, max_ack_pending=max(1000, self.batch_size * 4),
            filter_subjects=self.filter_subjects if len(self.filter_subjects) > 1 else None,
            filter_subject=self.filter_subjects[0] if len(self.filter_subjects) == 1 else None,
        )
        try:
            info = await self.js.add_consumer(self.stream, config)
        except nats.js.errors.BadRequestError:
            log.info("consumer %s exists with another config; keeping it", self.durable)
        else:  # the backlog a (re)started consumer faces, before its first fetch
            self._pending.set(info.num_pending or 0)
        return await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        sub = await self.ensure()
        try:
            while not self._stopping.is_set():
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=self.fetch_timeout_s)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError,
                        nats.errors.ConnectionReconnectingError, nats.js.errors.APIError,
                        nats.errors.NoRespondersError) as exc:
                    log.warning("fetch from %s failed: %s", self.durable, exc)
                    await asyncio.sleep(1.0)
                    continue
                if msgs:  # what was left to deliver as the batch's last message left NATS
                    self._pending.set(msgs[-1].metadata.num_pending)
                await self._handle(msgs)
        finally:
            # A pull subscription left open makes the connection's drain wait its whole
            # timeout (30 s) at shutdown; the durable consumer itself stays on the server.
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, msgs: list[Msg]) -> None:
        fresh: list[Msg] = []
        for msg in msgs:
            if not any(subject_matches(p, msg.subject) for p in self.filter_subjects):
                # NATS < 2.10 ignores a list of filter subjects and delivers the whole stream.
                await _quietly(msg.ack())
            elif msg.metadata.num_delivered > MAX_DELIVER:
                await dead_letter(self.js, msg, f"redelivered {MAX_DELIVER} times")
            else:
                fresh.append(msg)
        if not fresh:
            return
        try:
            await self.handler(fresh)
        except Exception as exc:  # a transient failure: the messages come back later
            log.warning("handler of %s failed, will retry: %r", self.durable, exc)
            metrics.HANDLER_RETRIES.labels(consumer=self.durable).inc(len(fresh))
            for msg in fresh:
                if not msg.is_acked:
                    await _quietly(msg.nak(delay=RETRY_DELAY_S))
            return
        for msg in fresh:
            if not msg.is_acked:
                await _quietly(msg.ack())


async def dead_letter(js: JetStreamContext, msg: Msg, reason: str) -> None:
    """Move a message that can never be handled to the dead-letter stream and terminate it."""
    log.warning("dead-lettered %s: %s", msg.subject, reason)
    metrics.DEAD_LETTERS.labels(subject=msg.subject.split(".")[2] if msg.subject.count(".") > 1
                                else msg.subject).inc()
    headers = {"Acuvim-Reason": reason[:500], "Acuvim-Subject": msg.subject}
    try:
        await js.publish(dead_letter_subject(msg.subject), msg.data, headers=headers)
    except Exception as exc:  # never lose the stream position over a dead letter
        log.error("could not dead-letter %s: %r", msg.subject, exc)
    await _quietly(msg.term())


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a final `>` is one or more tokens."""
    want, have = pattern.split("."), subject.split(".")
    for i, level in enumerate(want):
        if level == ">":
            return len(have) > i
        if i >= len(have) or (level != "*" and level != have[i]):
            return False
    return len(want) == len(have)


def dead_letter_subject(subject: str) -> str:
    return subject.split(".", 1)[0] + ".dead"


def each(handle: Callable[[Msg], Awaitable[None]]) -> BatchHandler:
    """Adapt a one-message handler: a ConsoleError (bad input) dead-letters that message only;
    any other exception is transient and fails the rest of the batch for redelivery."""

    async def run(msgs: Sequence[Msg]) -> None:
        for msg in msgs:
            try:
                await handle(msg)
            except ConsoleError as exc:
                await dead_letter(msg._client.jetstream(), msg, f"{exc.title}: {exc.detail}")
                continue
            await _quietly(msg.ack())

    return run


async def _quietly(op: Awaitable[Any]) -> None:
    try:
        await op
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        log.debug("ack/nak failed (redelivery will follow): %r", exc)
