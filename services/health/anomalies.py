"""Anomalies the console reads in heartbeats (alerts with source 'console'). Pure functions.

A heartbeat repeats the reset reason of the last boot until the next one, so a reset is an
anomaly only on the first heartbeat of a boot; Modbus errors are a counter since boot, so only a
rise within one boot is news. Every condition that clears closes its alert.
"""

from __future__ import annotations

from typing import Any

import msgspec

from libs.common.messages.device import Heartbeat
from services.health.schemas import Device

ABNORMAL_RESET = "abnormal_reset"
LOW_MEMORY = "low_memory"
MODBUS_ERRORS = "modbus_errors"
DEVICE_OFFLINE = "device_offline"
DEVICE_OFFLINE_MESSAGE = "no heartbeat within the offline threshold"

# Reset reasons that mean the device did not restart on purpose, and how bad each is.
ABNORMAL_RESETS = {"brownout": "warning", "watchdog": "warning", "panic": "critical"}
# Free heap below this (bytes) leaves an ESP32 running TLS, MQTT and Modbus close to failed
# allocations and a crash; the firmware idles around 100-150 kB.
LOW_HEAP_FLOOR_BYTES = 20_000


class Opening(msgspec.Struct, frozen=True, kw_only=True):
    """An alert to open (or to count again when it is already open)."""

    alert_type: str
    severity: str
    message: str
    value: float | None = None
    threshold: float | None = None
    metadata: dict[str, Any] | None = None


class Findings(msgspec.Struct, frozen=True, kw_only=True):
    opened: list[Opening]
    cleared: list[str]


def is_new_boot(prev: Device, hb: Heartbeat) -> bool:
    if prev.last_heartbeat is None:
        return True
    if hb.boot_count is not None and hb.boot_count != prev.boot_count:
        return True
    return hb.reset_reason is not None and hb.reset_reason != prev.reset_reason


def heartbeat_findings(prev: Device, hb: Heartbeat) -> Findings:
    """What this heartbeat opens and clears, given the device as it was before it."""
    opened: list[Opening] = []
    cleared: list[str] = []
    new_boot = is_new_boot(prev, hb)
    for check in (_reset, _heap, _modbus):
        opening, clears = check(prev, hb, new_boot)
        if opening is not None:
            opened.append(opening)
        elif clears:
            cleared.append(clears)
    return Findings(opened=opened, cleared=cleared)


def _reset(_: Device, hb: Heartbeat, new_boot: bool) -> tuple[Opening | None, str | None]:
    if not new_boot or hb.reset_reason is None:
        return None, None
    severity = ABNORMAL_RESETS.get(hb.reset_reason)
    if severity is None:
        return None, ABNORMAL_RESET
    return Opening(alert_type=ABNORMAL_RESET, severity=severity,
                   message=f"device restarted after a {hb.reset_reason} reset",
                   value=float(hb.boot_count) if hb.boot_count is not None else None,
                   metadata={"reset_reason": hb.reset_reason, "boot_count": hb.boot_count}), None


def _heap(_: Device, hb: Heartbeat, __: bool) -> tuple[Opening | None, str | None]:
    if hb.free_heap is None:
        return None, None
    if hb.free_heap >= LOW_HEAP_FLOOR_BYTES:
        return None, LOW_MEMORY
    return Opening(alert_type=LOW_MEMORY, severity="warning",
                   message=f"free heap {hb.free_heap} B below {LOW_HEAP_FLOOR_BYTES} B",
                   value=float(hb.free_heap), threshold=float(LOW_HEAP_FLOOR_BYTES),
                   metadata={"min_free_heap": hb.min_free_heap}), None


def _modbus(prev: Device, hb: Heartbeat, new_boot: bool) -> tuple[Opening | None, str | None]:
    if hb.modbus_errors is None:
        return None, None
    if prev.last_heartbeat is None:
        before = None  # nothing to compare with yet
    elif new_boot:
        before = 0  # the counter restarts with the device
    else:
        before = prev.modbus_errors
    if before is None or hb.modbus_errors <= before:
        return None, MODBUS_ERRORS
    return Opening(alert_type=MODBUS_ERRORS, severity="warning",
                   message=f"{hb.modbus_errors - before} new Modbus errors since the last "
                           "heartbeat", value=float(hb.modbus_errors),
                   metadata={"new_errors": hb.modbus_errors - before,
                             "modbus_ok": hb.modbus_ok}), None
