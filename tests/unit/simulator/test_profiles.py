"""The fleet's profiles: repeatable ids and the demo's roles; the device config update."""

from __future__ import annotations

import re

import pytest

from simulator.devconfig import ConfigRejected, default_config, merged
from simulator.profiles import FleetConfig, build_profiles, make_profile


def test_the_same_seed_gives_the_same_fleet_and_ids_follow_the_contract() -> None:
    fleet = build_profiles(FleetConfig(devices=50, seed=1))
    assert fleet == build_profiles(FleetConfig(devices=50, seed=1))
    assert fleet != build_profiles(FleetConfig(devices=50, seed=2))
    ids = [p.device_id for p in fleet]
    assert len(set(ids)) == 50
    assert all(re.fullmatch(r"ACV-[0-9A-F]{12}", i) for i in ids)
    assert all(p.mac_address.replace(":", "") == p.device_id[4:] for p in fleet)


def test_the_demo_fleet_has_weak_gsm_devices_one_flaky_link_and_one_modbus_loss() -> None:
    fleet = build_profiles(FleetConfig(devices=50, seed=1, fail_ota_devices=2))
    gsm = [p for p in fleet if p.radio == "gsm"]
    assert 3 <= len(gsm) <= 6
    assert all(-105 <= p.signal_dbm <= -95 and p.imei and p.iccid for p in gsm)
    flaky = [p for p in fleet if p.flaky]
    modbus = [p for p in fleet if p.modbus_loss]
    failing = [p for p in fleet if p.fail_ota]
    assert len(flaky) == 1 and flaky[0].radio == "gsm"
    assert len(modbus) == 1 and len(failing) == 2
    assert len({p.index for p in flaky + modbus + failing}) == 4  # no device has two roles


def test_set_config_merges_a_partial_config_and_refuses_bad_values() -> None:
    config = default_config(make_profile(1, 0), 60, 60)
    new, ignored = merged(config, {"heartbeat_interval_s": 30,
                                   "thresholds": {"overvoltage": 250.0}, "colour": "red"})
    assert new["heartbeat_interval_s"] == 30 and new["thresholds"]["overvoltage"] == 250.0
    assert new["thresholds"]["undervoltage"] == 207.0 and ignored == ["colour"]
    assert config["heartbeat_interval_s"] == 60  # the old one is untouched
    bad: object
    for bad in ({"heartbeat_interval_s": "fast"}, {"telemetry_interval_s": 0},
                {"wifi": "x"}, {"wifi": {"ssid": 5}}, []):
        with pytest.raises(ConfigRejected):
            merged(config, bad)
