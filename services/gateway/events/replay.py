"""Resume: the events a reconnecting client missed, read back from the EVENTS stream."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.gateway.events.model import EventFilter, LiveEvent, Namer

# A replay that receives nothing for this long lost messages under it (expired meanwhile).
REPLAY_IDLE_S = 5.0


@dataclass(frozen=True)
class Bounds:
    """The sequences the stream still holds: first..last (first = last + 1 when empty)."""

    first_seq: int
    last_seq: int

    def can_resume_after(self, seq: int) -> bool:
        """False when events after `seq` are gone (too old) or `seq` was never issued."""
        return self.first_seq - 1 <= seq <= self.last_seq


async def stream_bounds(js: JetStreamContext, stream: str) -> Bounds:
    info = await js.stream_info(stream)
    return Bounds(first_seq=info.state.first_seq, last_seq=info.state.last_seq)


async def replay(js: JetStreamContext, stream: str, root: str, namer: Namer, *,
                 after_seq: int, until_seq: int,
                 event_filter: EventFilter) -> AsyncIterator[LiveEvent]:
    """Every live event with after_seq < seq <= until_seq that the filter accepts, in order.

    An ephemeral ordered consumer starting at after_seq + 1 (in memory, gone with the client).
    Telemetry is not coalesced here: a resumed client gets every event it missed.
    """
    if until_seq <= after_seq:
        return
    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                            opt_start_seq=after_seq + 1)
    sub = await js.subscribe(f"{root}.>", stream=stream, config=config, ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=REPLAY_IDLE_S)
            except nats.errors.TimeoutError:
                return
            seq = msg.metadata.sequence.stream
            if seq > until_seq:
                return
            event = namer.event_of(msg.subject, seq, msg.data)
            if event is not None and event_filter.accepts(event):
                yield event
            if seq == until_seq:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
