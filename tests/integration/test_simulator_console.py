"""One simulated device through the running console: registration -> telemetry -> command ->
OTA (a rollout, a ranged download from the gateway) -> the new version, and a rollback."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from simulator import Fleet, FleetConfig, SimulatedDevice, make_profile
from tests.support.console import MQTT_URL, Console
from tests.support.esp_image import build_image
from tests.support.waiting import eventually


def config_for(console: Console) -> FleetConfig:
    return FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=console.topic_prefix,
                       http_url=console.base_url, telemetry_interval_s=1.0,
                       heartbeat_interval_s=1.0, boot_time_s=0.2, unsynced_boot_chance=0.0,
                       start_spread_s=0.0, download_chunk_bytes=4096)


@pytest.fixture
async def api(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client("admin") as client:
        yield client


async def one_device(console: Console, **roles: bool) -> Fleet:
    profile = replace(make_profile(random.randrange(1 << 30), 0, radio="gsm", **roles),
                      firmware_version="1.0.0")
    fleet = Fleet(config_for(console), profiles=[profile])
    await fleet.start()
    return fleet


async def json_of(api: httpx.AsyncClient, path: str) -> Any:
    reply = await api.get(path)
    return reply.json() if reply.status_code == 200 else None


async def deploy(api: httpx.AsyncClient, device: SimulatedDevice, version: str) -> Any:
    image = build_image(version, seed=random.randrange(1000), code_bytes=20_000)
    uploaded = await api.post("/api/firmware", files={
        "file": ("firmware.bin", image, "application/octet-stream")},
        data={"version": version}, timeout=60)
    assert uploaded.status_code == 201, uploaded.text
    rollout = await api.post("/api/firmware/deploy", json={
        "version": version, "device_ids": [device.device_id]})
    assert rollout.status_code == 202, rollout.text
    return rollout.json()


async def test_a_simulated_device_registers_reports_answers_and_updates(
        console: Console, api: httpx.AsyncClient) -> None:
    fleet = await one_device(console)
    device = fleet.devices[0]
    try:
        async def registered() -> Any:
            found = await json_of(api, f"/api/devices/{device.device_id}")
            return found and found.get("firmware_version") == "1.0.0"

        await eventually(registered, timeout_s=20, what="device registered")

        async def latest() -> Any:
            body = await json_of(api, f"/api/devices/{device.device_id}/telemetry")
            return body and "v1" in str(body)

        await eventually(latest, timeout_s=20, what="telemetry stored")
        ping = await api.post(f"/api/devices/{device.device_id}/command",
                              json={"command": "ping", "wait_s": 10})
        assert ping.status_code == 202, ping.text
        assert ping.json()["status"] == "success"

        major = random.randrange(1000, 9_999_999)
        await deploy(api, device, f"{major}.0.0")

        async def updated() -> Any:
            found = await json_of(api, f"/api/devices/{device.device_id}")
            return found and found.get("firmware_version") == f"{major}.0.0"

        try:
            await eventually(updated, timeout_s=40, what="the new version reported")
        except AssertionError:
            history = await api.get(f"/api/devices/{device.device_id}/commands")
            rollouts = await api.get("/api/firmware/rollouts")
            raise AssertionError(f"{history.text[:3000]} {rollouts.text[:2000]} "
                                 f"{device.sent} {device.firmware_version}") from None
        assert device.firmware_version == f"{major}.0.0" and device.reset_reason == "ota"
    finally:
        await fleet.stop()


async def test_a_device_whose_new_image_fails_comes_back_with_the_old_version(
        console: Console, api: httpx.AsyncClient) -> None:
    fleet = await one_device(console, fail_ota=True)
    device = fleet.devices[0]
    try:
        async def registered() -> Any:
            return await json_of(api, f"/api/devices/{device.device_id}")

        await eventually(registered, timeout_s=20, what="device registered")
        before = device.boot_count
        await deploy(api, device, f"{random.randrange(1000, 9_999_999)}.0.0")

        async def rolled_back() -> bool:
            return device.boot_count > before and device.state == "online"

        await eventually(rolled_back, timeout_s=40, what="the device rebooted")
        found = await json_of(api, f"/api/devices/{device.device_id}")
        assert device.firmware_version == "1.0.0" and device.reset_reason == "panic"
        assert found["firmware_version"] == "1.0.0"
    finally:
        await fleet.stop()
