from __future__ import annotations

import pytest

from libs.common.settings import SettingsError, check_degraded_before_offline, load_settings


def test_defaults_are_the_contracts() -> None:
    s = load_settings({})
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/acuvim"
    assert s.mqtt_url == "mqtt://127.0.0.1:1883"
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert (s.topic_prefix, s.http_host, s.http_port) == ("acuvim", "127.0.0.1", 8000)
    assert s.public_base_url == "http://127.0.0.1:8000"
    assert s.jwt_secret is None and s.admin_email is None
    assert (s.health_check_interval_s, s.degraded_multiplier, s.offline_multiplier) == (30, 3, 5)
    assert s.command_timeout_s == 60
    assert s.firmware_storage == "./.data/firmware"
    assert s.telemetry_retention_days == 365


@pytest.mark.parametrize(("name", "value"), [
    ("ACUVIM_HTTP_PORT", "abc"),
    ("ACUVIM_HTTP_PORT", "70000"),
    ("ACUVIM_DATABASE_URL", "mysql://x/y"),
    ("ACUVIM_MQTT_URL", "http://broker"),
    ("ACUVIM_NATS_URL", "nats://"),
    ("ACUVIM_TOPIC_PREFIX", "a/b"),
    ("ACUVIM_TOPIC_PREFIX", "a+"),
    ("ACUVIM_JWT_SECRET", "short"),
    ("ACUVIM_HEALTH_CHECK_INTERVAL_S", "0"),
    ("ACUVIM_DEGRADED_MULTIPLIER", "-1"),
    ("ACUVIM_COMMAND_TIMEOUT_S", "soon"),
    ("ACUVIM_FIRMWARE_STORAGE", "ftp://host/x"),
    ("ACUVIM_TELEMETRY_RETENTION_DAYS", "1.5"),
    ("ACUVIM_BUS_ROOT", "a.b"),
    ("ACUVIM_MQTT_SHARED_SUBSCRIPTIONS", "maybe"),
    ("ACUVIM_JETSTREAM_REPLICAS", "2"),
    ("ACUVIM_DEVICE_IN_RETENTION_HOURS", "0"),
    ("ACUVIM_DEVICE_IN_RETENTION_HOURS", "-24"),
    ("ACUVIM_DEVICE_IN_RETENTION_HOURS", "1.5"),
    ("ACUVIM_DEVICE_IN_RETENTION_HOURS", "a week"),
    ("ACUVIM_DEVICE_IN_MAX_GB", "-1"),
    ("ACUVIM_DEVICE_IN_MAX_GB", "10GB"),
    ("ACUVIM_DEVICE_IN_MAX_GB", "nan"),
    ("ACUVIM_DEVICE_IN_MAX_GB", "inf"),
    ("ACUVIM_DEVICE_IN_MAX_GB", "0.0001"),  # under NATS's largest message
])
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_device_streams_keep_a_week_with_no_byte_limit_by_default() -> None:
    s = load_settings({})
    assert (s.device_in_retention_hours, s.device_in_max_gb) == (168, 0)
    assert s.device_in_max_age_s == 7 * 24 * 3600
    assert s.device_in_max_bytes == -1  # JetStream's "no limit"


@pytest.mark.parametrize(("hours", "gb", "max_age_s", "max_bytes"), [
    ("1", "0.5", 3600, 2**29),
    ("24", "80", 86400, 80 * 2**30),
    ("168", "0.001", 604800, 1073741),
    (" 48 ", "0", 172800, -1),
])
def test_device_stream_limits_are_read(hours: str, gb: str, max_age_s: int,
                                       max_bytes: int) -> None:
    s = load_settings({"ACUVIM_DEVICE_IN_RETENTION_HOURS": hours, "ACUVIM_DEVICE_IN_MAX_GB": gb})
    assert (s.device_in_max_age_s, s.device_in_max_bytes) == (max_age_s, max_bytes)


def test_good_values_are_typed() -> None:
    s = load_settings({"ACUVIM_HTTP_PORT": "9000", "ACUVIM_DEGRADED_MULTIPLIER": "2.5",
                       "ACUVIM_FIRMWARE_STORAGE": "s3://bucket/fw",
                       "ACUVIM_PUBLIC_BASE_URL": "https://console.example.com/",
                       "ACUVIM_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert s.http_port == 9000 and s.degraded_multiplier == 2.5
    assert s.firmware_storage == "s3://bucket/fw"
    assert s.public_base_url == "https://console.example.com"
    assert s.cors_origins == ("https://a.example", "https://b.example")


def test_degraded_must_come_before_offline() -> None:
    with pytest.raises(SettingsError, match="ACUVIM_DEGRADED_MULTIPLIER"):
        check_degraded_before_offline(load_settings({"ACUVIM_DEGRADED_MULTIPLIER": "5"}))
