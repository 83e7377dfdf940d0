"""A gateway of its own (its own bus root, so the EVENTS stream can be purged) and a NATS
connection to publish facts into its EVENTS stream as the services do."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from libs.common.codec import encode
from libs.common.messages.events import DeviceStatusChanged, TelemetryReceived
from libs.common.subjects import Subjects
from tests.support.console import NATS_URL, Console


@pytest.fixture(scope="package")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    async with Console.running(Path(tmp_path_factory.mktemp("events")), ("gateway",),
                               timeout_s=30) as c:
        yield c


@pytest.fixture(scope="package")
async def bus(gateway: Console) -> AsyncIterator[Bus]:
    nc = await nats.connect(NATS_URL)
    try:
        yield Bus(nc, Subjects(gateway.bus_root))
    finally:
        await nc.close()


class Bus:
    """Publish facts into the test gateway's EVENTS stream; each call answers the sequence."""

    def __init__(self, nc: NATS, subjects: Subjects) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.subjects = subjects

    async def publish(self, subject: str, fact: Any) -> int:
        ack = await self.js.publish(subject, encode(fact))
        return int(ack.seq)

    async def status(self, device_id: str, new_status: str = "online") -> int:
        return await self.publish(self.subjects.device_status_changed(device_id),
                                  DeviceStatusChanged(occurred_at=time.time(),
                                                      device_id=device_id, old_status=None,
                                                      new_status=new_status, reason="test"))

    async def telemetry(self, device_id: str, value: float) -> int:
        return await self.publish(self.subjects.telemetry_received(device_id), TelemetryReceived(
            occurred_at=time.time(), device_id=device_id, ts=time.time(), source="live",
            connection="wifi", readings=1, data={"p": value}))
