"""Alerts a gateway raises from its own readings and thresholds, and resolves when they pass.

While a condition lasts the device repeats the active alert with every reading (the firmware
does); the first reading without it sends one `resolved`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.readings import ReadingValue


@dataclass(frozen=True)
class Condition:
    alert_type: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    metadata: dict[str, Any]


def _worst(data: dict[str, ReadingValue], keys: tuple[str, ...],
           highest: bool) -> tuple[int, float] | None:
    """(phase, value) of the highest (or lowest) of a phase triple that could be read."""
    values = [(n + 1, data.get(k)) for n, k in enumerate(keys)]
    numbers = [(phase, float(v)) for phase, v in values if isinstance(v, int | float)]
    if not numbers:
        return None
    pick = max if highest else min
    return pick(numbers, key=lambda pv: pv[1])


def conditions(data: dict[str, ReadingValue], thresholds: dict[str, float],
               modbus_address: int) -> dict[str, Condition | None]:
    """Each alert type's condition now: a Condition, None (clear) or absent (cannot tell)."""
    out: dict[str, Condition | None] = {}
    if data.get("meter_status") == "modbus_error":
        out["modbus_loss"] = Condition(
            "modbus_loss", "critical", f"Meter at Modbus address {modbus_address} not answering",
            None, None, {"modbus_address": modbus_address})
        return out  # no readings: the other conditions are unknown, not clear
    out["modbus_loss"] = None
    volts = ("v1", "v2", "v3")
    high, low = _worst(data, volts, True), _worst(data, volts, False)
    amps = _worst(data, ("i1", "i2", "i3"), True)
    over_v, under_v = thresholds.get("overvoltage"), thresholds.get("undervoltage")
    over_i = thresholds.get("overcurrent")
    if high is not None and over_v is not None:
        out["overvoltage"] = Condition(
            "overvoltage", "warning", f"Phase {high[0]} voltage {high[1]} V above {over_v} V",
            high[1], over_v, {"phase": high[0]}) if high[1] > over_v else None
    if low is not None and under_v is not None:
        out["undervoltage"] = Condition(
            "undervoltage", "warning", f"Phase {low[0]} voltage {low[1]} V below {under_v} V",
            low[1], under_v, {"phase": low[0]}) if low[1] < under_v else None
    if amps is not None and over_i is not None:
        out["overcurrent"] = Condition(
            "overcurrent", "critical", f"Phase {amps[0]} current {amps[1]} A above {over_i} A",
            amps[1], over_i, {"phase": amps[0]}) if amps[1] > over_i else None
    return out


class AlertWatcher:
    """Which alerts are open; `check` answers the alert messages a reading causes."""

    def __init__(self) -> None:
        self.active: set[str] = set()

    def check(self, data: dict[str, ReadingValue], thresholds: dict[str, float],
              modbus_address: int, ts: float) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for alert_type, condition in conditions(data, thresholds, modbus_address).items():
            if condition is not None:
                self.active.add(alert_type)
                messages.append({
                    "ts": ts, "alert_type": alert_type, "severity": condition.severity,
                    "message": condition.message, "value": condition.value,
                    "threshold": condition.threshold, "metadata": condition.metadata,
                    "state": "active"})
            elif alert_type in self.active:
                self.active.discard(alert_type)
                messages.append({"ts": ts, "alert_type": alert_type, "severity": "info",
                                 "message": f"{alert_type} cleared", "state": "resolved"})
        return messages
