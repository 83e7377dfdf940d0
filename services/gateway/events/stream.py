"""One SSE connection: catch up from Last-Event-ID, then live events, keep-alives, expiry.

No gap, no duplicate: the client is attached to the hub *before* the stream's last sequence is
read, so every event after that sequence is in its queue; the catch-up replays the stream up to
that sequence, and queued events at or below it are skipped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from libs.common.codec import encode
from libs.common.facts import RESET_EVENT, TOKEN_EXPIRED_EVENT
from services.gateway.events.hub import Client, Hub
from services.gateway.events.model import (
    KEEP_ALIVE_FRAME,
    EventFilter,
    retry_frame,
    sse_frame,
)
from services.gateway.events.replay import replay, stream_bounds

# Comments this often keep proxies from cutting an idle stream.
KEEP_ALIVE_S = 15.0
# EventSource waits this long before reconnecting after the stream ended.
RETRY_MS = 2000


@dataclass(frozen=True)
class StreamRequest:
    event_filter: EventFilter
    last_event_id: int | None
    expires_at: float  # epoch seconds: the access token's expiry ends the stream


async def live_stream(hub: Hub, request: StreamRequest, *, keep_alive_s: float = KEEP_ALIVE_S,
                      clock: Callable[[], float] = time.time) -> AsyncIterator[bytes]:
    client = hub.attach(request.event_filter)
    try:
        yield retry_frame(RETRY_MS)
        skip_upto = 0
        if request.last_event_id is not None:
            catch_up = CatchUp(hub, client, request.last_event_id)
            async for frame in catch_up.frames():
                yield frame
            skip_upto = catch_up.replayed_upto
        async for frame in _live(client, request, skip_upto, keep_alive_s, clock):
            yield frame
    finally:
        hub.detach(client)


class CatchUp:
    def __init__(self, hub: Hub, client: Client, after_seq: int) -> None:
        self.hub = hub
        self.client = client
        self.after_seq = after_seq
        self.replayed_upto = 0

    async def frames(self) -> AsyncIterator[bytes]:
        stream = self.hub.subjects.events_stream
        bounds = await stream_bounds(self.hub.js, stream)
        self.replayed_upto = bounds.last_seq
        if not bounds.can_resume_after(self.after_seq):
            body = {"reason": "the events after this id are no longer kept; reload",
                    "last_event_id": self.after_seq, "first_id": bounds.first_seq}
            yield sse_frame(RESET_EVENT, encode(body), bounds.last_seq)
            return
        async for event in replay(self.hub.js, stream, self.hub.subjects.root, self.hub.namer,
                                  after_seq=self.after_seq, until_seq=bounds.last_seq,
                                  event_filter=self.client.filter):
            yield event.frame


async def _live(client: Client, request: StreamRequest, skip_upto: int, keep_alive_s: float,
                clock: Callable[[], float]) -> AsyncIterator[bytes]:
    while True:
        remaining_s = request.expires_at - clock()
        if remaining_s <= 0:
            yield sse_frame(TOKEN_EXPIRED_EVENT, b"{}")
            return
        try:
            event = await client.next(min(keep_alive_s, remaining_s))
        except TimeoutError:
            if request.expires_at > clock():
                yield KEEP_ALIVE_FRAME
            continue
        if event is None:  # dropped by the hub: too slow
            return
        if event.seq > skip_upto:
            yield event.frame
