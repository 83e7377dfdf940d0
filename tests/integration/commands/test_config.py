"""Configuration: a validated partial config pushed as set_config, reported after success,
passwords masked in every answer and fact; and the Wi-Fi scan that waits for the device."""

from __future__ import annotations

import json
from typing import Any

import httpx
import nats

from tests.integration.commands.fleet import FakeDevice, answer_success, bring_online
from tests.support.console import NATS_URL, Console
from tests.support.waiting import eventually

SECRET = "wifi-secret-42"
GSM_SECRET = "gsm-secret-7"


async def test_push_config_masks_secrets_and_becomes_reported(
        console: Console, api: httpx.AsyncClient, device_id: str) -> None:
    facts: list[tuple[str, bytes]] = []
    nc = await nats.connect(NATS_URL)

    async def keep(msg: Any) -> None:
        facts.append((msg.subject, msg.data))

    await nc.subscribe(f"{console.bus_root}.>", cb=keep)
    try:
        async with FakeDevice(console, device_id) as device:
            await bring_online(console, api, device_id)
            pushed = await api.post(f"/api/devices/{device_id}/config", json={
                "telemetry_interval_s": 30, "wifi": {"ssid": "plant", "password": SECRET},
                "modbus": {"address": 7, "baud": 19200, "parity": "E"}})
            assert pushed.status_code == 202, pushed.text
            request_id = pushed.json()["request_id"]
            command = await device.next_command()
            # The device needs its password: only its command carries it in clear.
            assert command["command"] == "set_config"
            assert command["params"]["wifi"] == {"ssid": "plant", "password": SECRET}
            before = (await api.get(f"/api/devices/{device_id}/config")).json()
            assert before["pending_request_id"] == request_id
            assert "wifi.password" in before["differs"] and before["reported"] is None
            await device.answer(request_id, "ack")
            await device.answer(request_id, "success")

            async def reported() -> dict[str, Any]:
                config: dict[str, Any] = (await api.get(f"/api/devices/{device_id}/config")).json()
                assert config["reported"] is not None and config["differs"] == []
                return config

            config = await eventually(reported, what="config reported")
            assert config["desired"]["wifi"] == {"ssid": "plant", "password": "********"}
            assert config["reported"]["modbus"] == {"address": 7, "baud": 19200, "parity": "E"}
            assert config["pending_request_id"] is None
            assert [h["kind"] for h in config["history"]] == ["reported", "desired"]

            # A get_config answer replaces what is reported (the device's own view).
            asked = await api.post(f"/api/devices/{device_id}/command",
                                   json={"command": "get_config"})
            get_id = asked.json()["request_id"]
            await device.next_command()
            await device.answer(get_id, "success", data={
                "telemetry_interval_s": 60, "wifi": {"ssid": "plant", "password": SECRET},
                "gsm": {"apn": "internet", "user": "", "password": GSM_SECRET}})

            async def replaced() -> dict[str, Any]:
                config: dict[str, Any] = (await api.get(f"/api/devices/{device_id}/config")).json()
                assert config["reported"].get("gsm"), config["reported"]
                return config

            config = await eventually(replaced, what="get_config reported")
            assert config["reported"]["gsm"]["password"] == "********"
            assert sorted(config["differs"]) == ["modbus.address", "modbus.baud",
                                                 "modbus.parity", "telemetry_interval_s"]
            everything = [
                json.dumps(config),
                (await api.get(f"/api/devices/{device_id}/commands")).text,
                (await api.get(f"/api/devices/{device_id}/commands/{request_id}")).text,
                (await api.get(f"/api/devices/{device_id}/commands/{get_id}")).text,
            ]
    finally:
        await nc.close()
    # Secrets travel from the operator (the push request) to the device (DEVICE_OUT, MQTT) and
    # back in the device's get_config answer; never in a fact.
    to_device = [data for subject, data in facts if ".out.cmd." in subject]
    assert any(SECRET.encode() in data for data in to_device)
    carriers = (".out.", ".in.", ".rpc.")
    elsewhere = [data.decode() for subject, data in facts
                 if not any(part in subject for part in carriers)]
    assert any(".config.reported." in subject for subject, _ in facts)
    for text in everything + elsewhere:
        assert SECRET not in text and GSM_SECRET not in text


async def test_bad_config_names_the_field(api: httpx.AsyncClient, device_id: str) -> None:
    for body, field in [({"modbus": {"address": 300}}, "modbus.address"),
                        ({"heartbeat_interval_s": 5}, "heartbeat_interval_s"),
                        ({"wifi": {"password": "short"}}, "wifi.password"),
                        ({"thresholds": {"overcurrent": -1}}, "thresholds.overcurrent"),
                        ({"firmware": "x"}, "firmware")]:
        reply = await api.post(f"/api/devices/{device_id}/config", json=body)
        assert reply.status_code == 422, reply.text
        assert field in reply.json()["detail"]


async def test_wifi_scan_answered_in_time(console: Console, api: httpx.AsyncClient,
                                          device_id: str) -> None:
    networks = [{"ssid": "plant-wifi", "rssi": -61, "channel": 6, "auth": "wpa2"}]
    async with FakeDevice(console, device_id, responder=answer_success({"networks": networks})):
        await bring_online(console, api, device_id)
        reply = await api.get(f"/api/devices/{device_id}/config/wifi/scan")
    assert reply.status_code == 200, reply.text
    assert reply.json()["networks"] == networks and reply.json()["status"] == "success"


async def test_wifi_scan_without_a_timely_answer(console: Console, api: httpx.AsyncClient,
                                                 device_id: str) -> None:
    async with FakeDevice(console, device_id) as device:
        await bring_online(console, api, device_id)
        reply = await api.get(f"/api/devices/{device_id}/config/wifi/scan",
                              params={"wait_s": 1})
        assert reply.status_code == 202, reply.text
        assert reply.json()["command"] == "wifi_scan"
        assert (await device.next_command())["request_id"] == reply.json()["request_id"]
