"""GET /api/events: events with id/event/data, filters, tokens, expiry, coalescing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from libs.common.messages.device import Heartbeat
from libs.common.messages.events import HeartbeatReceived
from tests.integration.events.conftest import Bus
from tests.integration.events.sse import sse
from tests.support.console import Console
from tests.support.waiting import eventually


async def test_an_event_has_the_stream_sequence_as_id_its_name_and_the_fact_as_data(
        gateway: Console, bus: Bus, device_id: str) -> None:
    async with sse(gateway.base_url, token=gateway.token("viewer")) as stream:
        seq = await bus.status(device_id, "online")

        async def arrived() -> bool:
            return bool(stream.named("device_status_changed"))

        await eventually(arrived, what="the status event")
    event = stream.named("device_status_changed")[0]
    assert event.id == seq
    assert event.data["device_id"] == device_id
    assert event.data["new_status"] == "online"
    assert event.data["schema_version"] == 1


async def test_filters_by_device_and_by_type(gateway: Console, bus: Bus, device_id: str) -> None:
    other = device_id + "X"
    params = [("device_id", device_id), ("types", "heartbeat_received,device_status_changed")]
    async with sse(gateway.base_url, token=gateway.token("viewer"), params=params) as stream:
        await bus.status(other)  # another device: filtered out
        await bus.telemetry(device_id, 1.0)  # another type: filtered out
        await bus.publish(bus.subjects.heartbeat_received(device_id), HeartbeatReceived(
            occurred_at=time.time(), device_id=device_id,
            heartbeat=Heartbeat(device_id=device_id, received_at=time.time(), ts=time.time(),
                                signal_strength=-60)))
        last = await bus.status(device_id, "offline")

        async def arrived() -> bool:
            return last in stream.ids()

        await eventually(arrived, what="the last event")
    assert [e.name for e in stream.events] == ["heartbeat_received", "device_status_changed"]
    assert all(e.data["device_id"] == device_id for e in stream.events)


async def test_an_unknown_type_or_a_bad_device_id_is_a_400(gateway: Console) -> None:
    async with gateway.client("viewer") as http:
        reply = await http.get("/api/events", params={"types": "nonsense"})
        assert reply.status_code == 400
        assert "nonsense" in reply.json()["detail"]
        reply = await http.get("/api/events", params={"device_id": "a.b"})
        assert reply.status_code == 400
        reply = await http.get("/api/events", headers={"Last-Event-ID": "x1"})
        assert reply.status_code == 400


async def test_the_token_may_be_a_query_parameter_and_a_bad_token_is_a_401(
        gateway: Console, bus: Bus, device_id: str) -> None:
    params = {"access_token": gateway.token("viewer"), "device_id": device_id}
    async with sse(gateway.base_url, params=params) as stream:
        seq = await bus.status(device_id)

        async def arrived() -> bool:
            return seq in stream.ids()

        await eventually(arrived, what="the event through a query token")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        for params in ({"access_token": "not-a-token"}, {}):
            reply = await http.get("/api/events", params=params)
            assert reply.status_code == 401
            assert reply.headers["content-type"].startswith("application/problem+json")


async def test_the_stream_ends_when_the_token_expires(gateway: Console) -> None:
    async with sse(gateway.base_url, token=gateway.token("viewer", ttl_s=2)) as stream:
        async def ended() -> bool:
            return stream.ended

        await eventually(ended, timeout_s=10, what="the end of the stream")
    assert stream.events[-1].name == "token_expired"


async def test_telemetry_is_coalesced_to_one_per_device_per_second_keeping_the_latest(
        gateway: Console, bus: Bus, device_id: str) -> None:
    params = {"device_id": device_id}
    async with sse(gateway.base_url, token=gateway.token("viewer"), params=params) as stream:
        for value in range(5):
            await bus.telemetry(device_id, float(value))

        async def two() -> bool:
            return len(stream.named("telemetry_received")) >= 2

        await eventually(two, timeout_s=5, what="the first and the held telemetry")
        last = await bus.status(device_id)  # anything held would have come out before this

        async def after() -> bool:
            return last in stream.ids()

        await eventually(after, what="the sentinel")
    values = [e.data["data"]["p"] for e in stream.named("telemetry_received")]
    assert values == [0.0, 4.0]


async def test_open_streams_end_when_the_gateway_stops(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """An open stream must not hold a stopping gateway until the HTTP server's grace period
    (10 s) runs out and it cancels the response."""
    lone = Console.for_session(Path(tmp_path_factory.mktemp("stop")))
    lone.start("gateway")
    try:
        await lone.wait_healthy(services=(), timeout_s=30)
        async with sse(lone.base_url, token=lone.token("viewer")) as stream:
            codes = await asyncio.to_thread(lone.stop, "gateway")
            assert codes == [0]
            assert "graceful shutdown exceeded" not in lone.log("gateway")

            async def ended() -> bool:
                return stream.ended

            await eventually(ended, timeout_s=2, what="the stream's end")
    finally:
        lone.stop_all()
        await lone.delete_streams()
        await lone.drop_database()
