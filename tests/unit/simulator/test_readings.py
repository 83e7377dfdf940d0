"""The meter's readings: plausible ranges, counters that only grow, repeatable with a seed."""

from __future__ import annotations

import random

from simulator.alerts import AlertWatcher
from simulator.readings import REGISTERS, MeterEvents, MeterSimulator, ReadingValue

THRESHOLDS = {"overvoltage": 253.0, "undervoltage": 207.0, "overcurrent": 80.0}
QUIET = MeterEvents(voltage_event_chance=0.0, overcurrent_chance=0.0)


def readings(meter: MeterSimulator, count: int,
             step_s: float = 60.0) -> list[dict[str, ReadingValue]]:
    return [meter.read(1_764_842_400.0 + n * step_s) for n in range(count)]


def test_a_reading_has_about_fifty_registers_in_plausible_ranges() -> None:
    for data in readings(MeterSimulator(random.Random(1), events=QUIET), 500):
        assert set(data) == set(REGISTERS) and 45 <= len(data) <= 80
        assert data["meter_status"] == "ok"
        for phase in ("v1", "v2", "v3"):
            assert 220.0 <= data[phase] <= 240.0  # type: ignore[operator]
        assert 380.0 <= data["v12"] <= 420.0  # type: ignore[operator]
        for phase in ("i1", "i2", "i3"):
            assert 0.0 <= data[phase] <= 80.0  # type: ignore[operator]
        assert 0.5 <= data["pf"] <= 1.0  # type: ignore[operator]
        assert 49.9 <= data["freq"] <= 50.1  # type: ignore[operator]
        assert data["s"] >= abs(data["p"]) - 0.01  # type: ignore[operator,arg-type]


def test_energy_counters_only_grow() -> None:
    for seed in range(20):
        meter = MeterSimulator(random.Random(seed), has_pv=seed % 2 == 0,
                               events=MeterEvents(modbus_loss_chance=0.2))
        last: dict[str, float] = {}
        for data in readings(meter, 300, step_s=900.0):
            for counter in ("ep_imp", "ep_exp", "eq_imp", "eq_exp", "es", "run_hours"):
                value = data[counter]
                if value is None:  # Modbus lost: nothing read, the meter kept counting
                    continue
                assert isinstance(value, float)
                assert value >= last.get(counter, 0.0)
                last[counter] = value
        assert last["ep_imp"] > 0


def test_the_same_seed_gives_the_same_readings() -> None:
    first = readings(MeterSimulator(random.Random(42)), 50)
    again = readings(MeterSimulator(random.Random(42)), 50)
    other = readings(MeterSimulator(random.Random(43)), 50)
    assert first == again
    assert first != other


def test_now_and_then_a_register_reads_null_and_a_lost_meter_reads_nothing() -> None:
    data = readings(MeterSimulator(random.Random(3), events=MeterEvents(modbus_loss_chance=0.3)),
                    300)
    partial = [d for d in data if d["meter_status"] == "ok" and None in d.values()]
    lost = [d for d in data if d["meter_status"] == "modbus_error"]
    assert partial and lost
    assert all(value is None for d in lost for key, value in d.items() if key != "meter_status")


def test_alerts_are_raised_repeated_while_active_and_resolved() -> None:
    watcher = AlertWatcher()
    normal: dict[str, ReadingValue] = {"v1": 230.0, "v2": 231.0, "v3": 229.0, "i1": 10.0,
                                       "i2": 11.0, "i3": 9.0, "meter_status": "ok"}
    high: dict[str, ReadingValue] = {**normal, "v2": 262.1}
    assert watcher.check(normal, THRESHOLDS, 1, 1.0) == []
    first = watcher.check(high, THRESHOLDS, 1, 2.0)
    again = watcher.check(high, THRESHOLDS, 1, 3.0)
    resolved = watcher.check(normal, THRESHOLDS, 1, 4.0)
    assert [a["alert_type"] for a in first] == ["overvoltage"] == [a["alert_type"] for a in again]
    assert first[0]["value"] == 262.1 and first[0]["threshold"] == 253.0
    assert first[0]["metadata"] == {"phase": 2} and first[0]["state"] == "active"
    assert [(a["alert_type"], a["state"]) for a in resolved] == [("overvoltage", "resolved")]
    lost = watcher.check({"meter_status": "modbus_error"}, THRESHOLDS, 3, 5.0)
    assert [(a["alert_type"], a["severity"]) for a in lost] == [("modbus_loss", "critical")]
    back = watcher.check(normal, THRESHOLDS, 3, 6.0)
    assert [(a["alert_type"], a["state"]) for a in back] == [("modbus_loss", "resolved")]


def test_voltage_and_current_events_cross_the_default_thresholds() -> None:
    watcher = AlertWatcher()
    meter = MeterSimulator(random.Random(5), events=MeterEvents(
        voltage_event_chance=0.05, overcurrent_chance=0.05))
    kinds = {(a["alert_type"], a["state"])
             for n, data in enumerate(readings(meter, 600))
             for a in watcher.check(data, THRESHOLDS, 1, float(n))}
    for kind in ("overvoltage", "undervoltage", "overcurrent"):
        assert (kind, "active") in kinds and (kind, "resolved") in kinds
