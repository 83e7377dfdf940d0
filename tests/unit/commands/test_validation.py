"""The firmware's command set and configuration schema, checked before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from libs.common.errors import InvalidInput
from services.commands.validation import COMMANDS, validate_config, validate_params

OTA = {"url": "https://console.example/api/firmware/download/1.3.0", "version": "1.3.0",
       "checksum": "ab" * 32, "size": 1_234_567}


def test_every_firmware_command_is_known() -> None:
    assert set(COMMANDS) == {"reboot", "ping", "wifi_scan", "get_config", "set_config",
                             "sync_time", "clear_sd", "ota_update"}


@pytest.mark.parametrize("command", ["reboot", "ping", "wifi_scan", "get_config", "sync_time",
                                     "clear_sd"])
def test_commands_without_params(command: str) -> None:
    assert validate_params(command, None) == {}
    assert validate_params(command, {}) == {}


def test_ota_params_pass() -> None:
    assert validate_params("ota_update", OTA) == OTA


@pytest.mark.parametrize(("change", "field"), [
    ({"checksum": "xy" * 32}, "checksum"),
    ({"checksum": "ab" * 31}, "checksum"),
    ({"size": 0}, "size"),
    ({"size": "12"}, "size"),
    ({"url": "ftp://x/fw.bin"}, "url"),
    ({"extra": 1}, "extra"),
])
def test_bad_ota_params_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        validate_params("ota_update", {**OTA, **change})


def test_missing_ota_param_is_named() -> None:
    params = {k: v for k, v in OTA.items() if k != "version"}
    with pytest.raises(InvalidInput, match="version"):
        validate_params("ota_update", params)


def test_unknown_command_is_refused() -> None:
    with pytest.raises(InvalidInput, match="command"):
        validate_params("self_destruct", {})


def test_a_full_config_passes_and_nulls_are_dropped() -> None:
    config = {"telemetry_interval_s": 60, "heartbeat_interval_s": 86_400,
              "wifi": {"ssid": "plant-wifi", "password": "12345678"},
              "gsm": {"apn": "internet", "user": "", "password": "x"},
              "modbus": {"address": 247, "baud": 115200, "parity": "E"},
              "thresholds": {"overvoltage": 253.0, "undervoltage": 207, "overcurrent": 80},
              }
    checked = validate_config(config)
    assert checked["modbus"] == {"address": 247, "baud": 115200, "parity": "E"}
    assert validate_config({"wifi": {"ssid": "a", "password": None}}) == {"wifi": {"ssid": "a"}}
    assert validate_config({"wifi": {"password": ""}}) == {"wifi": {"password": ""}}


@pytest.mark.parametrize(("config", "field"), [
    ({"telemetry_interval_s": 9}, "telemetry_interval_s"),
    ({"heartbeat_interval_s": 86_401}, "heartbeat_interval_s"),
    ({"modbus": {"address": 0}}, "modbus.address"),
    ({"modbus": {"address": 248}}, "modbus.address"),
    ({"modbus": {"baud": 9601}}, "modbus.baud"),
    ({"modbus": {"parity": "X"}}, "modbus.parity"),
    ({"thresholds": {"overvoltage": 0}}, "thresholds.overvoltage"),
    ({"thresholds": {"overcurrent": -1}}, "thresholds.overcurrent"),
    ({"wifi": {"ssid": ""}}, "wifi.ssid"),
    ({"wifi": {"ssid": "x" * 33}}, "wifi.ssid"),
    ({"wifi": {"password": "short"}}, "wifi.password"),
    ({"wifi": {"password": "x" * 64}}, "wifi.password"),
    ({"colour": "blue"}, "colour"),
    ({"modbus": {"speed": 9600}}, "speed"),
])
def test_bad_config_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput, match=field.replace(".", r"\.")):
        validate_config(config)


def test_an_empty_config_is_refused() -> None:
    with pytest.raises(InvalidInput):
        validate_config({})
    with pytest.raises(InvalidInput):
        validate_params("set_config", {})
