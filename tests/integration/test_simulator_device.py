"""One simulated device against the real Mosquitto: what a subscriber sees is the contract."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest

from simulator import FleetConfig, SimulatedDevice, make_profile
from tests.support.console import MQTT_URL
from tests.support.waiting import eventually
from tests.unit.simulator.listener import Listener, listening, retained

HEARTBEAT_FIELDS = {"ts", "uptime_s", "firmware_version", "connection_type", "signal_strength",
                    "ip_address", "boot_count", "free_heap", "min_free_heap", "reset_reason",
                    "modbus_ok", "modbus_errors", "sd_buffered", "heartbeat_interval"}
REGISTRATION_FIELDS = {"device_id", "mac_address", "hardware", "firmware_version",
                       "capabilities", "heartbeat_interval", "meter"}
CONFIG_SECTIONS = {"telemetry_interval_s", "heartbeat_interval_s", "wifi", "gsm", "modbus",
                   "thresholds"}


@pytest.fixture
def prefix() -> str:
    return "sim" + uuid.uuid4().hex[:10]


@pytest.fixture
async def ear(prefix: str) -> AsyncIterator[Listener]:
    async with listening(prefix) as listener:
        yield listener


def fleet_config(prefix: str, **options: object) -> FleetConfig:
    return FleetConfig(devices=1, mqtt_url=MQTT_URL, topic_prefix=prefix, boot_time_s=0.2,
                       unsynced_boot_chance=0.0, **options)  # type: ignore[arg-type]


@pytest.fixture
async def device(prefix: str) -> AsyncIterator[SimulatedDevice]:
    profile = make_profile(random.randrange(1 << 30), 0, radio="gsm")
    dev = SimulatedDevice(profile, fleet_config(prefix, duplicate_batch_chance=0.0))
    assert await dev.boot()
    yield dev
    await dev.shutdown()


async def test_registers_sends_telemetry_and_heartbeat_in_the_contract_shapes(
        device: SimulatedDevice, ear: Listener) -> None:
    await device.reboot()  # the listener was not there for the first boot: boot again
    registration = (await ear.wait(device.device_id, "register"))[0]
    assert set(registration) >= REGISTRATION_FIELDS
    assert registration["imei"] and registration["iccid"] and "gsm" in registration["capabilities"]
    assert set(registration["meter"]) == {"model", "serial", "modbus_address"}
    assert registration["heartbeat_interval"] == 60
    await ear.wait(device.device_id, "status", lambda s: s == "online")
    assert await retained(device.topic("status")) == "online"

    await device.publish_telemetry()
    await device.publish_heartbeat()
    live = (await ear.wait(device.device_id, "telemetry"))[0]
    assert live["source"] == "live" and live["connection"] == "gsm" and live["ts"] > 1.6e9
    assert 45 <= len(live["data"]) <= 80
    assert {"v1", "v2", "v3", "i1", "p", "q", "s", "pf", "freq", "ep_imp", "ep_exp",
            "meter_status"} <= set(live["data"])
    heartbeat = (await ear.wait(device.device_id, "heartbeat"))[0]
    assert set(heartbeat) == HEARTBEAT_FIELDS
    assert heartbeat["firmware_version"] == registration["firmware_version"]
    assert heartbeat["reset_reason"] == "software" and -108 <= heartbeat["signal_strength"] <= -92
    assert heartbeat["boot_count"] == device.boot_count


async def test_answers_ping_get_config_set_config_and_unknown_commands(
        device: SimulatedDevice, ear: Listener) -> None:
    ping = await ear.command(device.device_id, "ping")
    assert [a["status"] for a in ping] == ["ack", "success"]
    assert ping[1]["data"]["pong"] is True and ping[1]["data"]["uptime_s"] >= 0

    config = (await ear.command(device.device_id, "get_config"))[-1]["data"]
    assert set(config) == CONFIG_SECTIONS
    assert set(config["thresholds"]) == {"overvoltage", "undervoltage", "overcurrent"}

    changed = await ear.command(device.device_id, "set_config",
                                {"heartbeat_interval_s": 30, "modbus": {"baud": 19200}})
    assert changed[-1]["status"] == "success"
    again = (await ear.command(device.device_id, "get_config"))[-1]["data"]
    assert again["heartbeat_interval_s"] == 30 and again["modbus"]["baud"] == 19200
    refused = await ear.command(device.device_id, "set_config", {"telemetry_interval_s": "x"})
    assert refused[-1]["status"] == "error" and "telemetry_interval_s" in refused[-1]["error"]

    unknown = await ear.command(device.device_id, "self_destruct")
    assert [a["status"] for a in unknown] == ["error"]
    scan = (await ear.command(device.device_id, "wifi_scan"))[-1]["data"]["networks"]
    assert scan and {"ssid", "rssi", "channel", "auth"} == set(scan[0])


async def test_goes_offline_buffers_on_sd_and_replays_when_back(
        device: SimulatedDevice, ear: Listener) -> None:
    await device.publish_telemetry()
    await ear.wait(device.device_id, "telemetry")
    await device.go_offline()
    await ear.wait(device.device_id, "status", lambda s: s == "offline")  # the will
    assert await retained(device.topic("status")) == "offline"

    kept = [await device.publish_telemetry() for _ in range(7)]
    assert len(device.sd) == 8  # the last live reading is on the card too
    small_batches = fleet_config(device.fleet.topic_prefix, sd_replay_batch=3,
                                 duplicate_batch_chance=0.0)
    device.fleet = small_batches
    assert await device.come_back()
    await ear.wait(device.device_id, "status", lambda s: s == "online")
    replays = await ear.wait(device.device_id, "telemetry", lambda t: t["source"] == "sd",
                             count=3)
    assert [len(r["records"]) for r in replays] == [3, 3, 2]
    replayed_ts = [rec["ts"] for r in replays for rec in r["records"]]
    assert [k["ts"] for k in kept if k] == replayed_ts[1:]
    assert all(set(rec) == {"ts", "data"} for r in replays for rec in r["records"])
    await eventually(lambda: _empty(device), what="SD card replayed")


async def _empty(device: SimulatedDevice) -> bool:
    return not device.sd


async def test_reboot_registers_again_with_one_more_boot_and_clear_sd_and_sync_time(
        device: SimulatedDevice, ear: Listener) -> None:
    before = device.boot_count
    answers = await ear.command(device.device_id, "reboot")
    assert [a["status"] for a in answers] == ["ack", "success"]
    registration = (await ear.wait(device.device_id, "register"))[0]
    assert registration["device_id"] == device.device_id
    await ear.wait(device.device_id, "status", lambda s: s == "offline")
    await ear.wait(device.device_id, "status", lambda s: s == "online")
    assert device.boot_count == before + 1 and device.reset_reason == "software"

    device.clock_synced = False
    assert device.device_ts() == 0
    synced = (await ear.command(device.device_id, "sync_time"))[-1]
    assert synced["status"] == "success" and device.device_ts() > 1.6e9
    await device.go_offline()
    await device.publish_telemetry()
    await device.come_back()
    cleared = (await ear.command(device.device_id, "clear_sd"))[-1]
    assert cleared["status"] == "success" and not device.sd
