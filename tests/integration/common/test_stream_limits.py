"""The disk bounds of DEVICE_IN/DEVICE_OUT against the real JetStream: the settings reach the
streams at a service's start, a changed setting changes an existing stream in place, a full
stream drops its oldest messages rather than refusing new ones, and a consumer that is behind
reports how far (acuvim_bus_consumer_pending)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from prometheus_client import REGISTRY

from libs.common import bus
from libs.common.runtime import Runtime
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.subjects import EVENTS_MAX_AGE_S, Subjects
from tests.support.console import NATS_URL, ROOT, Console

WEEK_S = 7 * 24 * 3600


@pytest.fixture
async def subjects(nc: NATS) -> AsyncIterator[Subjects]:
    """A bus root of the test's own; its streams are deleted after the test."""
    made = Subjects("t" + uuid.uuid4().hex[:8])
    yield made
    for config in bus.stream_configs(made):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(config.name or "")


def settings_for(subjects: Subjects, **env: str) -> Settings:
    return load_settings({"ACUVIM_BUS_ROOT": subjects.root, "ACUVIM_NATS_URL": NATS_URL, **env})


async def start_service(settings: Settings) -> None:
    """What every service does at start (Runtime.open declares the streams), then stop."""
    async with Runtime.open("limits-test", settings, asyncio.Event()):
        pass


async def device_streams(js: JetStreamContext, s: Subjects) -> list[StreamInfo]:
    return [await js.stream_info(s.device_in_stream), await js.stream_info(s.device_out_stream)]


async def test_a_changed_setting_changes_the_existing_device_streams(
        nc: NATS, subjects: Subjects) -> None:
    js = nc.jetstream()
    await start_service(settings_for(subjects))  # the streams as they were: a week, no cap
    for info in await device_streams(js, subjects):
        assert (info.config.max_age, info.config.max_bytes) == (WEEK_S, -1)

    await start_service(settings_for(subjects, ACUVIM_DEVICE_IN_RETENTION_HOURS="2",
                                     ACUVIM_DEVICE_IN_MAX_GB="0.5"))
    device_in, device_out = await device_streams(js, subjects)
    assert (device_in.config.max_age, device_in.config.max_bytes) == (2 * 3600, 2**29)
    # Commands only: bounded by age, no byte cap that NATS would reserve a second time.
    assert (device_out.config.max_age, device_out.config.max_bytes) == (2 * 3600, -1)
    for info in (device_in, device_out):
        assert info.config.discard == "old"
    events = await js.stream_info(subjects.events_stream)
    assert (events.config.max_age, events.config.max_bytes) == (EVENTS_MAX_AGE_S, -1)

    await start_service(settings_for(subjects, ACUVIM_DEVICE_IN_RETENTION_HOURS="36"))
    for info in await device_streams(js, subjects):
        assert (info.config.max_age, info.config.max_bytes) == (36 * 3600, -1)


async def test_a_full_device_stream_drops_its_oldest_and_takes_every_publish(
        nc: NATS, subjects: Subjects) -> None:
    js = nc.jetstream()
    cap = load_settings({"ACUVIM_DEVICE_IN_MAX_GB": "0.001"}).device_in_max_bytes  # ~1 MiB
    await bus.declare_streams(js, subjects, device_max_bytes=cap)
    payload = b"r" * 8192
    published = 300  # ~2.4 MiB: more than twice the cap
    for _ in range(published):
        await js.publish(subjects.telemetry_in, payload)  # raises if the stream refused it
    state = (await js.stream_info(subjects.device_in_stream)).state
    assert state.bytes <= cap
    assert state.last_seq == published
    assert state.first_seq > 1 and state.messages == published - state.first_seq + 1


async def test_a_cap_nats_cannot_reserve_is_a_bad_setting_not_a_wait(
        nc: NATS, subjects: Subjects) -> None:
    petabyte = settings_for(subjects, ACUVIM_DEVICE_IN_MAX_GB=str(2**20))
    with pytest.raises(SettingsError, match="ACUVIM_DEVICE_IN_MAX_GB"):
        await asyncio.wait_for(start_service(petabyte), timeout=10)  # not retried for ever


def test_a_cap_nats_cannot_reserve_stops_a_service_with_exit_2(tmp_path: Path) -> None:
    console = Console.for_session(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "services.health"], cwd=ROOT, capture_output=True, timeout=60,
        env=console.env(ACUVIM_DEVICE_IN_MAX_GB=str(2**20)), check=False)
    assert done.returncode == 2
    last = (done.stdout + done.stderr).decode().strip().splitlines()[-1]
    assert "ACUVIM_DEVICE_IN_MAX_GB" in last and "bad setting" in last, last


def pending(s: Subjects, durable: str) -> float | None:
    return REGISTRY.get_sample_value(
        "acuvim_bus_consumer_pending", {"stream": s.device_in_stream, "consumer": durable})


async def test_a_consumer_behind_reports_how_many_messages_it_has_not_received(
        nc: NATS, subjects: Subjects) -> None:
    js = nc.jetstream()
    await bus.declare_streams(js, subjects)
    for i in range(30):
        await js.publish(subjects.telemetry_in, f"bundle {i}".encode())
    handled: list[int] = []

    def consumer(stop_after: int) -> bus.DurableConsumer:
        async def handle(msgs: Sequence[Msg]) -> None:
            handled.append(len(msgs))
            if sum(handled) >= stop_after:
                made.stop()

        made = bus.DurableConsumer(js, stream=subjects.device_in_stream, durable="telemetry",
                                   filter_subjects=[subjects.telemetry_in], handler=handle,
                                   batch_size=10)
        return made

    first = consumer(stop_after=10)
    await first.ensure()
    assert pending(subjects, "telemetry") == 30  # its backlog, known at start
    await asyncio.wait_for(first.run(), timeout=10)
    assert sum(handled) == 10
    assert pending(subjects, "telemetry") == 20

    await asyncio.wait_for(consumer(stop_after=30).run(), timeout=10)
    assert sum(handled) == 30
    assert pending(subjects, "telemetry") == 0
