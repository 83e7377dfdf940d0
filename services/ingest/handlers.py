"""Transport: MQTT in -> validated bus messages out, and bus commands -> MQTT out.

At least once: an MQTT QoS 1 message is acknowledged to the broker (manual PUBACK) only after
JetStream stored what it became; a crash before that makes the broker deliver it again (the
session is persistent). Telemetry, the hot path, is bundled: the messages that arrived together
become one JetStream publish and are acknowledged together, once that publish is stored. Up to
PUBLISHES_IN_FLIGHT bundles are being stored at once while the next messages are read, so the
JetStream round trip does not stall the MQTT side.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram

from libs.common.codec import encode
from libs.common.messages.device import DeviceCommand, TelemetryBundle, TelemetryMessage
from libs.common.subjects import Subjects
from services.ingest import service
from services.ingest.service import MAX_PAYLOAD_BYTES, Rejected
from services.ingest.topics import BadTopic, Route, route

log = logging.getLogger(__name__)

RECEIVED = Counter("acuvim_ingest_received_total", "Device messages received", ["kind"])
REJECTED = Counter("acuvim_ingest_rejected_total", "Device messages dropped", ["reason"])
RECORDS_DROPPED = Counter("acuvim_ingest_records_dropped_total",
                          "Malformed records dropped from SD replays")
PUBLISHED = Counter("acuvim_ingest_published_total", "Messages stored in JetStream", ["kind"])
BUNDLE_SIZE = Histogram("acuvim_ingest_bundle_messages", "Telemetry messages per publish",
                        buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))
RETAINED_SKIPPED = Counter("acuvim_ingest_retained_skipped_total",
                           "Retained messages re-sent by the broker on (re)subscribing, skipped")
COMMANDS_SENT = Counter("acuvim_ingest_commands_sent_total", "Commands published to devices")

# One log line per device and reason per minute: a noisy device must not flood the logs.
REJECT_LOG_PERIOD_S = 60.0
# Telemetry bundle limits: the JetStream message stays well under the 1 MB default.
BUNDLE_MAX_MESSAGES = 500
BUNDLE_MAX_BYTES = 512 * 1024
# Telemetry bundles being stored in JetStream at once (each holds up to BUNDLE_MAX_MESSAGES).
PUBLISHES_IN_FLIGHT = 4
# Publishing to JetStream is retried this often (s) while NATS is away; MQTT acks wait.
PUBLISH_RETRY_S = 0.5

_VALIDATORS: dict[str, Callable[[str, bytes, float], Any]] = {
    "heartbeat": service.heartbeat,
    "status": service.status,
    "alerts": service.alert,
    "resp": service.answer,
}


@functools.cache
def _received(kind: str) -> Any:
    """The RECEIVED counter of one kind (looked up once: `labels` costs on every message)."""
    return RECEIVED.labels(kind=kind)


class RejectLog:
    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}

    def note(self, device: str, reason: str, detail: str) -> None:
        REJECTED.labels(reason=reason).inc()
        now = time.monotonic()
        key = (device, reason)
        if now - self._last.get(key, -REJECT_LOG_PERIOD_S) >= REJECT_LOG_PERIOD_S:
            self._last[key] = now
            if len(self._last) > 100_000:
                self._last.clear()
            log.warning("dropped device message", extra={
                "device_id": device[:64], "reason": reason, "detail": detail[:300]})


class Bridge:
    """Turns MQTT messages into bus messages; `ack` sends the MQTT PUBACK."""

    def __init__(self, js: JetStreamContext, subjects: Subjects, prefix: str,
                 ack: Callable[[aiomqtt.Message], None]) -> None:
        self.js = js
        self.subjects = subjects
        self.prefix = prefix
        self.ack = ack
        self.rejects = RejectLog()
        self._bundle: list[TelemetryMessage] = []
        self._bundle_msgs: list[aiomqtt.Message] = []
        self._bundle_bytes = 0
        self._slots = asyncio.Semaphore(PUBLISHES_IN_FLIGHT)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def handle(self, message: aiomqtt.Message, more_waiting: bool) -> None:
        """Handle one MQTT message; `more_waiting` tells whether to keep a bundle open."""
        if message.retain:
            # The broker re-sends retained messages (device status) on every subscribe, also
            # when ingest resubscribes after a reconnect. The persistent session was subscribed
            # when they were published, so the console has them; a replay would stamp an old
            # status with a new received_at. (Live and queued messages come with retain 0.)
            RETAINED_SKIPPED.inc()
            self.ack(message)
            if not more_waiting:
                await self.flush()
            return
        topic = message.topic.value
        received_at = time.time()
        payload = message.payload if isinstance(message.payload, bytes) else (
            str(message.payload).encode())
        try:
            where = route(topic, self.prefix)
            _received(where.kind).inc()
            if len(payload) > MAX_PAYLOAD_BYTES:
                raise Rejected("too_large", f"{len(payload)} bytes")
            await self._dispatch(where, payload, received_at, message)
        except (BadTopic, Rejected) as exc:
            device = topic.split("/")[1] if topic.count("/") >= 2 else topic
            self.rejects.note(device, exc.reason, str(exc))
            self.ack(message)
        if not more_waiting:
            await self.flush()

    async def _dispatch(self, where: Route, payload: bytes, received_at: float,
                        message: aiomqtt.Message) -> None:
        if where.kind == "register":
            reg = service.registration(payload, received_at)
            await self._publish(self.subjects.register(reg.device_id), encode(reg), "register")
            self.ack(message)
            return
        assert where.device_id is not None
        if where.kind == "telemetry":
            batch = service.telemetry(where.device_id, payload, received_at)
            if batch.dropped:
                RECORDS_DROPPED.inc(batch.dropped)
                self.rejects.note(where.device_id, "bad_record", f"{batch.dropped} records")
            if not batch.readings:
                self.ack(message)
                return
            self._bundle.append(batch)
            self._bundle_msgs.append(message)
            self._bundle_bytes += len(payload)
            if (len(self._bundle) >= BUNDLE_MAX_MESSAGES
                    or self._bundle_bytes >= BUNDLE_MAX_BYTES):
                await self.flush()
            return
        value = _VALIDATORS[where.kind](where.device_id, payload, received_at)
        subject = {
            "heartbeat": self.subjects.heartbeat, "status": self.subjects.status,
            "alerts": self.subjects.alert, "resp": self.subjects.answer,
        }[where.kind](where.device_id)
        await self._publish(subject, encode(value), where.kind)
        self.ack(message)

    async def flush(self) -> None:
        """Start storing the open bundle (waits only while PUBLISHES_IN_FLIGHT are pending)."""
        if not self._bundle:
            return
        bundle, msgs = self._bundle, self._bundle_msgs
        self._bundle, self._bundle_msgs, self._bundle_bytes = [], [], 0
        BUNDLE_SIZE.observe(len(bundle))
        data = encode(TelemetryBundle(bundle))
        await self._slots.acquire()
        task = asyncio.create_task(self._store_then_ack(data, len(bundle), msgs))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def drain(self) -> None:
        """Flush, then wait until every bundle is stored and its messages acknowledged."""
        await self.flush()
        while self._in_flight:
            await asyncio.gather(*self._in_flight)

    async def _store_then_ack(self, data: bytes, count: int, msgs: list[aiomqtt.Message]) -> None:
        try:
            await self._publish(self.subjects.telemetry_in, data, "telemetry", count=count)
            for msg in msgs:  # only this bundle's messages: each acked after its own publish
                self.ack(msg)
        finally:
            self._slots.release()

    async def _publish(self, subject: str, data: bytes, kind: str, count: int = 1) -> None:
        """Store in JetStream, retrying while NATS is away (the MQTT ack waits for this)."""
        while True:
            try:
                await self.js.publish(subject, data, timeout=5)
                PUBLISHED.labels(kind=kind).inc(count)
                return
            except Exception as exc:
                log.warning("JetStream publish failed, retrying: %r", exc)
                await asyncio.sleep(PUBLISH_RETRY_S)


class CommandSender:
    """Publishes DeviceCommands from the DEVICE_OUT stream to `{prefix}/{id}/cmd` at QoS 1."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()

    async def handle(self, msg: Msg) -> None:
        from libs.common.codec import decode

        command = decode(msg.data, DeviceCommand)
        body = encode({"request_id": command.request_id, "command": command.command,
                       "params": command.params})
        await asyncio.wait_for(self.connected.wait(), timeout=30)
        assert self.client is not None
        await self.client.publish(f"{self.prefix}/{command.device_id}/cmd", body, qos=1)
        COMMANDS_SENT.inc()
