"""The hub's fan-out without a bus: bounded queues, slow clients dropped, filters, coalescing."""

from __future__ import annotations

from typing import Any

from libs.common.subjects import Subjects
from services.gateway.events.coalesce import Coalescer
from services.gateway.events.hub import Hub
from services.gateway.events.model import EventFilter, LiveEvent, Namer, sse_frame
from services.gateway.events.stream import StreamRequest, live_stream
from tests.support.waiting import eventually

SUBJECTS = Subjects("unit")


def event(seq: int, name: str = "device_status_changed", device_id: str = "D1") -> LiveEvent:
    return LiveEvent(seq=seq, name=name, device_id=device_id,
                     frame=sse_frame(name, b'{"n":%d}' % seq, seq))


def hub(queue_size: int = 1000, window_s: float = 1.0) -> Hub:
    js: Any = None  # fan-out alone needs no bus
    return Hub(js, SUBJECTS, queue_size=queue_size, telemetry_window_s=window_s)


async def test_a_slow_client_is_dropped_and_a_fast_one_gets_everything() -> None:
    h = hub(queue_size=100)
    slow, fast = h.attach(EventFilter()), h.attach(EventFilter())
    received = []
    for seq in range(1, 251):
        h.broadcast(event(seq))
        got = await fast.next(1.0)
        assert got is not None
        received.append(got.seq)
    assert received == list(range(1, 251))
    assert slow.dropped and slow not in h.clients and fast in h.clients
    assert slow.queue.qsize() == 101  # bounded: 100 events and the end marker
    drained = [slow.queue.get_nowait() for _ in range(101)]
    assert drained[-1] is None


async def test_filters_pick_devices_and_names() -> None:
    h = hub()
    only_d2 = h.attach(EventFilter(device_ids=frozenset({"D2"})))
    only_hb = h.attach(EventFilter(names=frozenset({"heartbeat_received"})))
    h.broadcast(event(1, device_id="D1"))
    h.broadcast(event(2, device_id="D2"))
    h.broadcast(event(3, name="heartbeat_received", device_id="D1"))
    assert [e.seq for e in _drain(only_d2)] == [2]
    assert [e.seq for e in _drain(only_hb)] == [3]


async def test_the_coalescer_sends_the_first_at_once_and_the_latest_after_the_window() -> None:
    sent: list[LiveEvent] = []
    high_water = 10
    coalescer = Coalescer(sent.append, lambda: high_water, window_s=0.05)
    for seq in (3, 4, 5):
        coalescer.offer(event(seq, name="telemetry_received"))
    coalescer.offer(event(6, name="telemetry_received", device_id="D2"))
    assert [e.seq for e in sent] == [3, 6]

    async def flushed() -> bool:
        return len(sent) == 3

    await eventually(flushed, timeout_s=2, interval_s=0.01, what="the held event")
    assert [e.seq for e in sent] == [3, 6, 10]
    assert sent[-1].frame.startswith(b"id: 10\n") and b'{"n":5}' in sent[-1].frame


def test_subjects_map_to_event_names_and_device_ids() -> None:
    namer = Namer(SUBJECTS)
    hb = namer.event_of(SUBJECTS.heartbeat_received("D9"), 7, b"{}")
    assert hb is not None and (hb.name, hb.device_id, hb.seq) == ("heartbeat_received", "D9", 7)
    rollout = namer.event_of(SUBJECTS.firmware_rollout_updated("r1"), 8, b'{"device_id":"D3"}')
    assert rollout is not None and rollout.device_id == "D3"
    assert namer.event_of(SUBJECTS.firmware_download("D1"), 9, b"{}") is None  # bus only
    assert hb.frame == b'id: 7\nevent: heartbeat_received\ndata: {}\n\n'


async def test_a_stream_keeps_alive_when_idle_and_ends_at_token_expiry() -> None:
    h = hub()
    clock = FakeClock(1000.0)
    request = StreamRequest(event_filter=EventFilter(), last_event_id=None, expires_at=1000.05)
    frames = []
    async for frame in live_stream(h, request, keep_alive_s=0.01, clock=clock):
        frames.append(frame)
        clock.now += 0.01
    assert frames[0].startswith(b"retry:")
    assert b": keep-alive\n\n" in frames
    assert frames[-1] == b"event: token_expired\ndata: {}\n\n"
    assert not h.clients


async def test_a_dropped_client_s_stream_ends() -> None:
    h = hub(queue_size=1)
    request = StreamRequest(event_filter=EventFilter(), last_event_id=None, expires_at=1e12)
    stream = live_stream(h, request)
    assert (await anext(stream)).startswith(b"retry:")
    assert len(h.clients) == 1
    h.broadcast(event(1))
    h.broadcast(event(2))  # the queue (1) is full: dropped
    assert await anext(stream) == event(1).frame
    assert [f async for f in stream] == []


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _drain(client: Any) -> list[LiveEvent]:
    out = []
    while not client.queue.empty():
        out.append(client.queue.get_nowait())
    return out
