"""Resume with Last-Event-ID: every missed event, then live ones, no gap and no duplicate;
an id the stream no longer holds answers a `reset`."""

from __future__ import annotations

import asyncio

from tests.integration.events.conftest import Bus
from tests.integration.events.sse import sse
from tests.support.console import Console
from tests.support.waiting import eventually


async def test_a_client_resuming_gets_what_it_missed_then_live_events_exactly_once(
        gateway: Console, bus: Bus, device_id: str) -> None:
    token, params = gateway.token("viewer"), {"device_id": device_id}
    async with sse(gateway.base_url, token=token, params=params) as first:
        seen = await bus.status(device_id)

        async def got_first() -> bool:
            return seen in first.ids()

        await eventually(got_first, what="the first event")
    missed = [await bus.status(device_id, s) for s in ("offline", "online", "offline")]

    # Facts keep coming while the client catches up: none may be lost or repeated.
    async def publish_meanwhile() -> list[int]:
        return [await bus.status(device_id, "online") for _ in range(20)]

    publishing = asyncio.create_task(publish_meanwhile())
    async with sse(gateway.base_url, token=token, params=params,
                   headers={"Last-Event-ID": str(seen)}) as resumed:
        during = await publishing

        async def got_all() -> bool:
            return during[-1] in resumed.ids()

        await eventually(got_all, what="every event after the resume")
    assert resumed.ids() == missed + during


async def test_the_last_event_id_query_parameter_resumes_too(
        gateway: Console, bus: Bus, device_id: str) -> None:
    before = await bus.status(device_id)
    after = await bus.status(device_id, "offline")
    params = {"device_id": device_id, "last_event_id": str(before)}
    async with sse(gateway.base_url, token=gateway.token("viewer"), params=params) as stream:
        async def got() -> bool:
            return after in stream.ids()

        await eventually(got, what="the missed event")
    assert stream.ids() == [after]


async def test_an_id_older_than_the_stream_answers_reset_then_live_events(
        gateway: Console, bus: Bus, device_id: str) -> None:
    old = await bus.status(device_id)
    await bus.status(device_id, "offline")
    # Expiry (max age) removes the oldest facts; purging them does the same at once.
    await bus.js.purge_stream(bus.subjects.events_stream)
    params = {"device_id": device_id}
    async with sse(gateway.base_url, token=gateway.token("viewer"), params=params,
                   headers={"Last-Event-ID": str(old)}) as stream:
        async def reset_seen() -> bool:
            return bool(stream.named("reset"))

        # Publish only once the reset is out: a fact published before it is covered by the
        # reset's id (the client reloads), so it would not come as a live event.
        await eventually(reset_seen, what="the reset")
        live = await bus.status(device_id, "online")

        async def got() -> bool:
            return live in stream.ids()

        await eventually(got, what="a live event after the reset")
    assert [e.name for e in stream.events] == ["reset", "device_status_changed"]
    reset = stream.events[0]
    assert reset.id is not None and old < reset.id < live
    assert reset.data["last_event_id"] == old


async def test_an_id_from_the_future_answers_reset(gateway: Console, bus: Bus) -> None:
    async with sse(gateway.base_url, token=gateway.token("viewer"),
                   headers={"Last-Event-ID": "999999999"}) as stream:
        async def got() -> bool:
            return bool(stream.named("reset"))

        await eventually(got, what="the reset")
