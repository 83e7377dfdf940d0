"""Telemetry coalescing: at most one telemetry event per device per window, the latest one.

The first event of a device goes out at once; later ones within the window are held (each
replacing the previous) and the held one goes out when the window ends. A held event goes out
after events with higher sequence numbers, so it is relabelled with the hub's high-water
sequence: every client has all events up to that id by then, so resuming from it loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.gateway.events.model import LiveEvent

DEFAULT_WINDOW_S = 1.0
# Forget devices quiet for a window once this many are remembered (bounded memory).
PRUNE_AT_DEVICES = 10_000


def relabelled(event: LiveEvent, seq: int) -> LiveEvent:
    rest = event.frame.split(b"\n", 1)[1]
    return LiveEvent(seq=seq, name=event.name, device_id=event.device_id,
                     frame=f"id: {seq}\n".encode() + rest)


class Coalescer:
    def __init__(self, emit: Callable[[LiveEvent], None], high_water: Callable[[], int], *,
                 window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._high_water = high_water
        self.window_s = window_s
        self._clock = clock
        self._last_sent_at: dict[str | None, float] = {}
        self._held: dict[str | None, LiveEvent] = {}

    def offer(self, event: LiveEvent) -> None:
        if self.window_s <= 0:
            self._emit(event)
            return
        key, now = event.device_id, self._clock()
        last = self._last_sent_at.get(key)
        if last is None or now - last >= self.window_s:
            self._send(key, event, now)
            return
        if key not in self._held:
            asyncio.get_running_loop().call_later(last + self.window_s - now, self._flush, key)
        self._held[key] = event

    def _flush(self, key: str | None) -> None:
        event = self._held.pop(key, None)
        if event is not None:
            self._send(key, relabelled(event, max(event.seq, self._high_water())), self._clock())

    def _send(self, key: str | None, event: LiveEvent, now: float) -> None:
        self._last_sent_at[key] = now
        if len(self._last_sent_at) > PRUNE_AT_DEVICES:
            self._last_sent_at = {k: t for k, t in self._last_sent_at.items()
                                  if now - t < self.window_s or k in self._held}
        self._emit(event)

    @property
    def held(self) -> int:
        return len(self._held)
