"""Anomalies read from heartbeats: resets once per boot, heap floor, Modbus errors rising."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from libs.common.messages.device import Heartbeat
from services.health.anomalies import (
    ABNORMAL_RESET,
    LOW_HEAP_FLOOR_BYTES,
    LOW_MEMORY,
    MODBUS_ERRORS,
    heartbeat_findings,
)
from services.health.schemas import Device

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def device(**fields: Any) -> Device:
    base: dict[str, Any] = {f: None for f in Device.__struct_fields__}
    base.update(id="x", device_id="ACV-1", status="online", status_changed_at=NOW, tags=[],
                heartbeat_interval=60, clock_unsynced=False, created_at=NOW, updated_at=NOW,
                last_heartbeat=NOW, boot_count=3, reset_reason="power_on", modbus_errors=2)
    base.update(fields)
    return Device(**base)


def heartbeat(**fields: Any) -> Heartbeat:
    return Heartbeat(device_id="ACV-1", received_at=1.0, ts=1.0, **fields)


def types(findings: Any) -> tuple[list[str], list[str]]:
    return [o.alert_type for o in findings.opened], findings.cleared


def test_brownout_on_a_new_boot_opens_an_alert() -> None:
    found = heartbeat_findings(device(), heartbeat(boot_count=4, reset_reason="brownout"))
    assert types(found) == ([ABNORMAL_RESET], [])
    assert found.opened[0].metadata == {"reset_reason": "brownout", "boot_count": 4}


def test_panic_is_critical_and_the_first_heartbeat_counts_as_a_boot() -> None:
    found = heartbeat_findings(device(last_heartbeat=None, boot_count=0),
                               heartbeat(reset_reason="panic"))
    assert found.opened[0].severity == "critical"


def test_the_same_boot_repeating_its_reset_reason_is_no_news() -> None:
    prev = device(reset_reason="watchdog")
    assert types(heartbeat_findings(prev, heartbeat(boot_count=3, reset_reason="watchdog"))) \
        == ([], [])


def test_a_normal_boot_clears_the_reset_alert() -> None:
    found = heartbeat_findings(device(), heartbeat(boot_count=4, reset_reason="software"))
    assert types(found) == ([], [ABNORMAL_RESET])


def test_heap_below_the_floor_opens_and_above_clears() -> None:
    low = heartbeat_findings(device(), heartbeat(free_heap=LOW_HEAP_FLOOR_BYTES - 1))
    assert types(low) == ([LOW_MEMORY], [])
    assert low.opened[0].threshold == LOW_HEAP_FLOOR_BYTES
    assert types(heartbeat_findings(device(), heartbeat(free_heap=LOW_HEAP_FLOOR_BYTES))) \
        == ([], [LOW_MEMORY])


def test_modbus_errors_rising_within_a_boot() -> None:
    rising = heartbeat_findings(device(), heartbeat(boot_count=3, modbus_errors=5))
    assert types(rising) == ([MODBUS_ERRORS], [])
    assert rising.opened[0].metadata == {"new_errors": 3, "modbus_ok": None}
    steady = heartbeat_findings(device(), heartbeat(boot_count=3, modbus_errors=2))
    assert types(steady) == ([], [MODBUS_ERRORS])


def test_modbus_counter_restarts_with_a_boot_and_is_unknown_at_first() -> None:
    after_boot = heartbeat_findings(device(), heartbeat(boot_count=4, modbus_errors=1))
    assert MODBUS_ERRORS in types(after_boot)[0]
    first = heartbeat_findings(device(last_heartbeat=None), heartbeat(modbus_errors=50))
    assert MODBUS_ERRORS not in types(first)[0]


def test_findings_are_plain_data() -> None:
    found = heartbeat_findings(device(), heartbeat(free_heap=100))
    assert msgspec.to_builtins(found)["opened"][0]["alert_type"] == LOW_MEMORY
