"""Configuration secrets: sealed at rest, masked for people, in clear only for the device."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from libs.common.settings import load_settings
from services.commands.sealing import MASK, Sealer, differences, key_for, mask, merge

CONFIG = {"wifi": {"ssid": "plant", "password": "wifi-secret-1"},
          "gsm": {"apn": "internet", "password": "gsm-secret"}, "telemetry_interval_s": 60}


def test_seal_hides_and_unseal_restores() -> None:
    sealer = Sealer(Fernet.generate_key())
    sealed = sealer.seal(CONFIG)
    assert "wifi-secret-1" not in str(sealed) and "gsm-secret" not in str(sealed)
    assert sealed["wifi"]["ssid"] == "plant"
    assert sealer.seal(sealed) == sealed  # sealing twice keeps one layer
    assert sealer.unseal(sealed) == CONFIG


def test_another_key_cannot_unseal() -> None:
    sealed = Sealer(Fernet.generate_key()).seal(CONFIG)
    assert Sealer(Fernet.generate_key()).unseal(sealed)["wifi"]["password"] is None


def test_mask_every_password() -> None:
    masked = mask(CONFIG)
    assert masked["wifi"] == {"ssid": "plant", "password": MASK}
    assert masked["gsm"]["password"] == MASK
    assert mask(None) is None


def test_merge_updates_what_the_change_names() -> None:
    merged = merge(CONFIG, {"wifi": {"ssid": "office"}, "modbus": {"address": 3}})
    assert merged["wifi"] == {"ssid": "office", "password": "wifi-secret-1"}
    assert merged["modbus"] == {"address": 3} and merged["telemetry_interval_s"] == 60


def test_differences_are_paths() -> None:
    reported = {"wifi": {"ssid": "plant", "password": "old"}, "telemetry_interval_s": 60}
    assert differences(CONFIG, reported) == ["wifi.password", "gsm.apn", "gsm.password"]
    assert differences({"telemetry_interval_s": 60}, None) == ["telemetry_interval_s"]


def test_key_from_jwt_secret_or_a_kept_file(tmp_path: Path) -> None:
    env = {"ACUVIM_JWT_SECRET": "s" * 40, "ACUVIM_DATA_DIR": str(tmp_path)}
    assert key_for(load_settings(env)) == key_for(load_settings(env))
    without = load_settings({"ACUVIM_DATA_DIR": str(tmp_path)})
    first = key_for(without)
    assert key_for(without) == first and (tmp_path / "config_secrets.key").exists()
    Fernet(first)  # a valid key
