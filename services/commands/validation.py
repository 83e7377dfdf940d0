"""The firmware's command set and configuration schema (device-contract.md), checked before
anything is stored or sent: an unknown command, an unknown key or a value out of range is an
InvalidInput (422) that names the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from libs.common.errors import InvalidInput

Interval_s = Annotated[int, msgspec.Meta(ge=10, le=86_400)]
Positive = Annotated[float, msgspec.Meta(gt=0)]


class _Strict(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Unknown keys are refused: a typo must not be sent to a device in the field."""


class WifiConfig(_Strict, frozen=True):
    ssid: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | None = None
    # Empty: an open network; else WPA2's 8..63 characters.
    password: Annotated[str, msgspec.Meta(pattern=r"^(|.{8,63})$")] | None = None


class GsmConfig(_Strict, frozen=True):
    apn: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    user: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class ModbusConfig(_Strict, frozen=True):
    address: Annotated[int, msgspec.Meta(ge=1, le=247)] | None = None
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] | None = None
    parity: Literal["N", "E", "O"] | None = None


class ThresholdsConfig(_Strict, frozen=True):
    overvoltage: Positive | None = None
    undervoltage: Positive | None = None
    overcurrent: Positive | None = None


class DeviceConfig(_Strict, frozen=True):
    """A partial configuration: every key optional, nothing else allowed."""

    telemetry_interval_s: Interval_s | None = None
    heartbeat_interval_s: Interval_s | None = None
    wifi: WifiConfig | None = None
    gsm: GsmConfig | None = None
    modbus: ModbusConfig | None = None
    thresholds: ThresholdsConfig | None = None


class NoParams(_Strict, frozen=True):
    pass


class OtaParams(_Strict, frozen=True):
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=r"^https?://")]
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    checksum: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{64}$")]
    size: Annotated[int, msgspec.Meta(gt=0)]


PARAMS: dict[str, type[msgspec.Struct]] = {
    "reboot": NoParams, "ping": NoParams, "wifi_scan": NoParams, "get_config": NoParams,
    "set_config": DeviceConfig, "sync_time": NoParams, "clear_sd": NoParams,
    "ota_update": OtaParams,
}
COMMANDS = tuple(PARAMS)


def validate_params(command: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The params of a known command, checked and normalised (nulls dropped)."""
    kind = PARAMS.get(command)
    if kind is None:
        raise InvalidInput(f"command: unknown command {command!r}; known: {', '.join(COMMANDS)}")
    try:
        checked = msgspec.convert(params or {}, kind)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"params: {exc}") from None
    if command == "set_config" and not _without_nulls(msgspec.to_builtins(checked)):
        raise InvalidInput("params: set_config needs at least one setting")
    clean: dict[str, Any] = _without_nulls(msgspec.to_builtins(checked))
    return clean


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """A partial device configuration, checked; errors name the field (`config.$.wifi...`)."""
    try:
        checked = msgspec.convert(config, DeviceConfig)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"config: {exc}") from None
    clean: dict[str, Any] = _without_nulls(msgspec.to_builtins(checked))
    if not clean:
        raise InvalidInput("config: at least one setting is needed")
    return clean


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value
