"""A device's MQTT link across reboots and losses, against the real Mosquitto: a publish in flight
on a dropped connection ends at once, and an old connection never costs the device its new one."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from simulator import FleetConfig, SimulatedDevice, make_profile
from simulator.transport import PUBLISH_TIMEOUT_S, Broker, LinkDown, OwnConnection
from tests.support.console import MQTT_URL
from tests.support.waiting import eventually
from tests.unit.simulator.listener import Listener, listening, retained


@pytest.fixture
def prefix() -> str:
    return "sim" + uuid.uuid4().hex[:10]


@pytest.fixture
async def ear(prefix: str) -> AsyncIterator[Listener]:
    async with listening(prefix) as listener:
        yield listener


@pytest.fixture
async def device(prefix: str) -> AsyncIterator[SimulatedDevice]:
    config = FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=prefix, boot_time_s=0.2,
                         unsynced_boot_chance=0.0)
    dev = SimulatedDevice(make_profile(random.randrange(1 << 30), 0), config)
    assert await dev.boot()
    yield dev
    await dev.shutdown()


def current_link(device: SimulatedDevice) -> OwnConnection:
    link = device._link
    assert isinstance(link, OwnConnection)
    return link


async def online_again(ear: Listener, device: SimulatedDevice) -> None:
    """The listener heard `offline`, then `online` again."""
    async def probe() -> bool:
        statuses = ear.of(device.device_id, "status")
        return "offline" in statuses and statuses[-1] == "online"

    await eventually(probe, what=f"{device.device_id} online again")


async def test_a_publish_in_flight_when_the_link_is_dropped_fails_at_once(prefix: str) -> None:
    lost: list[str] = []
    link = OwnConnection(Broker(MQTT_URL), f"ACV-{uuid.uuid4().hex[:12].upper()}",
                         f"{prefix}/x/cmd", None,  # type: ignore[arg-type]
                         lambda _: None, lambda: lost.append("lost"))
    await link.open()
    publishing = asyncio.create_task(link.publish(f"{prefix}/x/telemetry", b"{}", qos=1))
    await asyncio.sleep(0)  # the publish is out; its PUBACK cannot have been read yet
    assert not publishing.done()
    await link.drop()
    # aiomqtt alone waits for that PUBACK until PUBLISH_TIMEOUT_S, and a device sat as long in
    # a dead publish (its autopilot silent after a reboot): the end of the link ends it.
    async with asyncio.timeout(PUBLISH_TIMEOUT_S / 2):
        with pytest.raises(LinkDown):
            await publishing
    assert lost == []  # dropped on purpose: not reported as lost


async def test_the_late_end_of_a_link_a_reboot_replaced_leaves_the_device_online(
        device: SimulatedDevice, ear: Listener) -> None:
    old = current_link(device)
    await device.reboot()
    new = current_link(device)
    assert new is not old and device.state == "online"
    device.on_link_lost(old)  # e.g. a publish that was in flight on it fails only now
    assert device.state == "online" and current_link(device) is new
    assert await device.publish_heartbeat() is not None
    assert (await ear.wait(device.device_id, "heartbeat"))[-1]["boot_count"] == device.boot_count


async def test_a_link_given_up_on_is_broken_off_before_its_client_id_is_used_again(
        device: SimulatedDevice, ear: Listener) -> None:
    old = current_link(device)
    device.on_link_lost(old)  # a publish timed out: the connection itself may still be up
    assert device.state == "offline"
    # Broken off, not left up: the broker says `offline` (the will) and stops passing commands
    # to a device that believes it has no link.
    await ear.wait(device.device_id, "status", lambda s: s == "offline")
    assert not old.connected
    assert await device.come_back()
    new = current_link(device)
    assert new.connected
    await online_again(ear, device)
    # No session takeover, no stray will: the last word is the new connection's `online`.
    assert await device.publish_heartbeat() is not None
    await ear.wait(device.device_id, "heartbeat")
    assert device.state == "online" and new.connected
    assert ear.of(device.device_id, "status")[-1] == "online"
    assert await retained(device.topic("status")) == "online"


async def test_the_end_of_the_current_link_is_a_loss_and_the_device_reconnects(
        device: SimulatedDevice, ear: Listener) -> None:
    link = current_link(device)
    await link.drop()  # the connection dies under the device (its will says `offline`)
    device.on_link_lost(link)
    assert device.state == "offline"
    await ear.wait(device.device_id, "status", lambda s: s == "offline")
    await eventually(device.come_back, what="a reconnect")
    await online_again(ear, device)
