"""A device's configuration, in the contract's shape, and `set_config`'s partial update."""

from __future__ import annotations

import copy
from typing import Any

from simulator.profiles import DeviceProfile

MIN_INTERVAL_S = 1


class ConfigRejected(ValueError):
    """A `set_config` value the firmware would refuse (the answer is `error`)."""


def default_config(profile: DeviceProfile, telemetry_interval_s: float,
                   heartbeat_interval_s: float) -> dict[str, Any]:
    return {
        "telemetry_interval_s": telemetry_interval_s,
        "heartbeat_interval_s": heartbeat_interval_s,
        "wifi": {"ssid": profile.wifi_ssid, "password": f"wifi-{profile.device_id[-6:]}"},
        "gsm": {"apn": "internet", "user": "", "password": f"gsm-{profile.device_id[-4:]}"},
        "modbus": {"address": profile.modbus_address, "baud": 9600, "parity": "N"},
        "thresholds": {"overvoltage": 253.0, "undervoltage": 207.0, "overcurrent": 80.0},
    }


def merged(config: dict[str, Any], partial: Any) -> tuple[dict[str, Any], list[str]]:
    """The config with `partial` applied, and the keys the firmware does not know (ignored).

    A value of the wrong type, or an interval below 1 s, is refused as a whole: a device never
    half-applies a configuration.
    """
    if not isinstance(partial, dict):
        raise ConfigRejected("params must be an object")
    result = copy.deepcopy(config)
    ignored: list[str] = []
    for key, value in partial.items():
        if key not in result:
            ignored.append(key)
        elif isinstance(result[key], dict):
            if not isinstance(value, dict):
                raise ConfigRejected(f"{key} must be an object")
            for sub, sub_value in value.items():
                if sub not in result[key]:
                    ignored.append(f"{key}.{sub}")
                else:
                    result[key][sub] = _checked(f"{key}.{sub}", result[key][sub], sub_value)
        else:
            result[key] = _checked(key, result[key], value)
    for key in ("telemetry_interval_s", "heartbeat_interval_s"):
        if result[key] < MIN_INTERVAL_S:
            raise ConfigRejected(f"{key} must be at least {MIN_INTERVAL_S}")
    return result, ignored


def _checked(name: str, current: Any, value: Any) -> Any:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(current, int | float) and not isinstance(current, bool):
        if not is_number:
            raise ConfigRejected(f"{name} must be a number")
        return value
    if isinstance(current, str) and not isinstance(value, str):
        raise ConfigRejected(f"{name} must be a string")
    return value
