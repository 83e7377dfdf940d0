"""The fan-out hub: one JetStream ordered consumer per gateway process (new facts of the EVENTS
stream), shared by all SSE clients of the process.

Each client has its own bounded queue; a client whose queue is full (it reads slower than facts
arrive) is dropped: its stream ends, and it resumes from its Last-Event-ID when it reconnects.
So a slow client never slows the others nor grows the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import prometheus_client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from libs.common.facts import fact_of_method
from libs.common.subjects import Subjects
from services.gateway.events.coalesce import DEFAULT_WINDOW_S, Coalescer
from services.gateway.events.model import EventFilter, LiveEvent, Namer

log = logging.getLogger(__name__)

# Events a client may lag behind before it is dropped (about 1,000 x ~600 bytes of frames).
DEFAULT_QUEUE_SIZE = 1000
TELEMETRY_EVENT = fact_of_method("telemetry_received").event  # type: ignore[union-attr]

CLIENTS = prometheus_client.Gauge("acuvim_gateway_sse_clients", "Connected SSE clients")
DROPPED = prometheus_client.Counter(
    "acuvim_gateway_sse_dropped_total", "SSE clients dropped because they read too slowly")
FANNED_OUT = prometheus_client.Counter(
    "acuvim_gateway_sse_events_total", "Live events received from the EVENTS stream", ["event"])


class Client:
    """One SSE connection's queue; `None` in the queue means: dropped, end the stream."""

    __slots__ = ("dropped", "filter", "limit", "queue")

    def __init__(self, event_filter: EventFilter, limit: int) -> None:
        self.filter = event_filter
        self.limit = limit
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(limit + 1)
        self.dropped = False

    def offer(self, event: LiveEvent) -> bool:
        """Queue the event if the client wants it; False when the client is too far behind."""
        if not self.filter.accepts(event):
            return True
        if self.queue.qsize() >= self.limit:
            self.dropped = True
            self.queue.put_nowait(None)  # the one spare slot
            return False
        self.queue.put_nowait(event)
        return True

    async def next(self, timeout_s: float) -> LiveEvent | None:
        """The next event, None once dropped; TimeoutError when nothing came in `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            return await self.queue.get()


class Hub:
    def __init__(self, js: JetStreamContext, subjects: Subjects, *,
                 queue_size: int = DEFAULT_QUEUE_SIZE,
                 telemetry_window_s: float = DEFAULT_WINDOW_S) -> None:
        self.js = js
        self.subjects = subjects
        self.queue_size = queue_size
        self.namer = Namer(subjects)
        self.clients: set[Client] = set()
        self.high_water = 0  # the last stream sequence received
        self.coalescer = Coalescer(self.broadcast, lambda: self.high_water,
                                   window_s=telemetry_window_s)
        self._sub: Any = None

    async def start(self) -> None:
        # Ordered consumer: in order, no acks, recreated by the client library after a gap.
        self._sub = await self.js.subscribe(
            f"{self.subjects.root}.>", stream=self.subjects.events_stream, cb=self.on_message,
            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        for client in list(self.clients):
            self._drop(client)

    async def on_message(self, msg: Msg) -> None:
        try:
            seq = msg.metadata.sequence.stream
        except Exception:  # not a stream message (a status): nothing to deliver
            return
        self.high_water = max(self.high_water, seq)
        event = self.namer.event_of(msg.subject, seq, msg.data)
        if event is None:
            return
        FANNED_OUT.labels(event=event.name).inc()
        if event.name == TELEMETRY_EVENT:
            self.coalescer.offer(event)
        else:
            self.broadcast(event)

    def broadcast(self, event: LiveEvent) -> None:
        for client in list(self.clients):
            if not client.offer(event):
                self.clients.discard(client)
                DROPPED.inc()
                log.info("SSE client dropped: %d events behind", client.limit)

    def attach(self, event_filter: EventFilter) -> Client:
        client = Client(event_filter, self.queue_size)
        self.clients.add(client)
        CLIENTS.set(len(self.clients))
        return client

    def detach(self, client: Client) -> None:
        self.clients.discard(client)
        CLIENTS.set(len(self.clients))

    def _drop(self, client: Client) -> None:
        self.clients.discard(client)
        client.dropped = True
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(None)
