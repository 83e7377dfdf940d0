"""OTA over MQTT and HTTP (Range, resume, SHA-256, reboot, rollback) and whole fleets, against
the real Mosquitto and a local firmware server."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import uuid
from collections.abc import AsyncIterator

import pytest

from simulator import Fleet, FleetConfig, SimulatedDevice, make_profile
from tests.support.console import MQTT_URL
from tests.unit.simulator.listener import Listener, listening, retained
from tests.unit.simulator.range_server import range_server


def esp32_image(version: str, size_bytes: int = 200_000) -> bytes:
    """An ESP32 application image: 0xE9 header, one segment opening with the app description."""
    header = bytes([0xE9, 1, 2, 0x20]) + struct.pack("<I", 0x400D0018) + bytes(16)
    app_desc = struct.pack("<II", 0xABCD5432, 0) + version.encode().ljust(32, b"\0")
    segment = app_desc + os.urandom(size_bytes - len(header) - 8 - len(app_desc))
    return header + struct.pack("<II", 0x3F400020, len(segment)) + segment


@pytest.fixture
def prefix() -> str:
    return "sim" + uuid.uuid4().hex[:10]


@pytest.fixture
async def ear(prefix: str) -> AsyncIterator[Listener]:
    async with listening(prefix) as listener:
        yield listener


async def booted(prefix: str, **profile: object) -> SimulatedDevice:
    config = FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=prefix, boot_time_s=0.2,
                         unsynced_boot_chance=0.0, download_chunk_bytes=32 * 1024)
    device = SimulatedDevice(make_profile(random.randrange(1 << 30), 0, **profile),  # type: ignore[arg-type]
                             config)
    assert await device.boot()
    return device


async def test_ota_downloads_with_resume_verifies_reboots_and_reports_the_new_version(
        prefix: str, ear: Listener) -> None:
    image = esp32_image("1.3.0")
    device = await booted(prefix, radio="gsm", flaky=True)  # its link breaks mid-download
    try:
        with range_server(image) as served:
            answers = await ear.command(device.device_id, "ota_update", {
                "url": served.url, "version": "1.3.0", "size": len(image),
                "checksum": hashlib.sha256(image).hexdigest()})
        statuses = [a["status"] for a in answers]
        assert statuses[0] == "ack" and statuses[-1] == "success"
        progress = [a["progress"] for a in answers if a["status"] == "progress"]
        assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(progress)
        done = answers[-1]["data"]
        assert done["sha256"] == hashlib.sha256(image).hexdigest() and done["resumes"] >= 1
        assert done["size"] == len(image)
        assert {d for _, d in served.requests} == {device.device_id}
        assert all(r and r.startswith("bytes=") for r, _ in served.requests)

        registration = await ear.wait(device.device_id, "register",
                                      lambda r: r["firmware_version"] == "1.3.0")
        assert registration
        heartbeat = await device.publish_heartbeat()
        assert heartbeat is not None and heartbeat["firmware_version"] == "1.3.0"
        assert heartbeat["reset_reason"] == "ota"
    finally:
        await device.shutdown()


async def test_a_device_told_to_fail_rolls_back_and_a_bad_checksum_is_an_error(
        prefix: str, ear: Listener) -> None:
    image = esp32_image("2.0.0")
    device = await booted(prefix, fail_ota=True)
    try:
        with range_server(image) as served:
            bad = await ear.command(device.device_id, "ota_update", {
                "url": served.url, "version": "2.0.0", "checksum": "ab" * 32})
            assert bad[-1]["status"] == "error" and "checksum" in bad[-1]["error"]
            answers = await ear.command(device.device_id, "ota_update", {
                "url": served.url, "version": "2.0.0", "size": len(image),
                "checksum": hashlib.sha256(image).hexdigest()})
        assert answers[-1]["status"] == "success"
        boots = await ear.wait(device.device_id, "register", count=2)  # boot and the reboot
        assert boots[-1]["firmware_version"] == "1.2.0"  # the bootloader went back
        heartbeat = await device.publish_heartbeat()
        assert heartbeat is not None and heartbeat["firmware_version"] == "1.2.0"
        assert heartbeat["reset_reason"] == "panic"
        missing = await ear.command(device.device_id, "ota_update", {"version": "2.0.0"})
        assert missing[-1]["status"] == "error"
    finally:
        await device.shutdown()


async def test_a_shared_pool_fleet_lives_answers_and_says_offline_itself(
        prefix: str, ear: Listener) -> None:
    config = FleetConfig(devices=4, mqtt_url=MQTT_URL, topic_prefix=prefix, seed=random.randrange(
        1 << 30), telemetry_interval_s=0.3, heartbeat_interval_s=0.3, connection_mode="shared",
        pool_size=2, flaky_devices=0, modbus_loss_devices=0, start_spread_s=0.2)
    async with Fleet(config) as fleet:
        for device in fleet.devices:
            await ear.wait(device.device_id, "register")
            await ear.wait(device.device_id, "telemetry", count=2)
            await ear.wait(device.device_id, "heartbeat", count=2)
        first = fleet.devices[0]
        ping = await ear.command(first.device_id, "ping")
        assert [a["status"] for a in ping] == ["ack", "success"]
        await first.go_offline()
        assert await retained(first.topic("status")) == "offline"
        await first.come_back()
        assert await retained(first.topic("status")) == "online"
    for device in fleet.devices:
        assert await retained(device.topic("status")) == "offline"
    assert fleet.totals()["telemetry"] >= 8


async def test_the_flaky_link_drops_by_itself_buffers_and_replays(
        prefix: str, ear: Listener) -> None:
    config = FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=prefix,
                         seed=random.randrange(1 << 30), telemetry_interval_s=0.1,
                         heartbeat_interval_s=1.0, flaky_devices=1, modbus_loss_devices=0,
                         gsm_devices=1, flaky_up_s=(0.3, 0.5), flaky_down_s=(0.5, 0.8),
                         start_spread_s=0.0)
    async with Fleet(config) as fleet:
        device = fleet.devices[0]
        assert device.profile.flaky
        await ear.wait(device.device_id, "status", lambda s: s == "offline", timeout_s=10)
        replays = await ear.wait(device.device_id, "telemetry", lambda t: t["source"] == "sd",
                                 timeout_s=10)
        assert replays[0]["records"] and replays[0]["connection"] == "gsm"
        await ear.wait(device.device_id, "status", lambda s: s == "online", count=2)


async def test_the_autopilot_resumes_after_a_reboot_longer_than_its_intervals(
        prefix: str, ear: Listener) -> None:
    config = FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=prefix,
                         seed=random.randrange(1 << 30), telemetry_interval_s=0.1,
                         heartbeat_interval_s=0.1, boot_time_s=0.5, flaky_devices=0,
                         modbus_loss_devices=0, start_spread_s=0.0)
    async with Fleet(config) as fleet:
        device = fleet.devices[0]
        await ear.wait(device.device_id, "heartbeat", count=2)
        assert (await ear.command(device.device_id, "reboot"))[-1]["status"] == "success"
        await ear.wait(device.device_id, "register", count=2)
        before = len(ear.of(device.device_id, "heartbeat"))
        await ear.wait(device.device_id, "heartbeat", count=before + 3)
        assert ear.of(device.device_id, "heartbeat")[-1]["reset_reason"] == "software"
