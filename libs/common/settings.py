"""The one settings loader: typed values from ACUVIM_* variables, validated once at start.

A bad value raises SettingsError naming the variable; `run_service` turns it into one clear log
line and exit code 2, so a misconfigured service never half-starts.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GIB = 2**30
# The smallest byte cap of the device streams: NATS's largest message (1 MiB) must fit.
_MIN_STREAM_GB = 0.001


class SettingsError(ValueError):
    """A settings variable has a value the console cannot use."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    mqtt_url: str
    nats_url: str
    topic_prefix: str
    http_host: str
    http_port: int
    public_base_url: str
    jwt_secret: str | None
    admin_email: str | None
    admin_password: str | None
    health_check_interval_s: float
    degraded_multiplier: float
    offline_multiplier: float
    command_timeout_s: float
    firmware_storage: str
    telemetry_retention_days: int
    # Internal settings (not in the contract, defaults fit a single machine).
    data_dir: Path
    bus_root: str
    log_format: str
    metrics_port: int
    rpc_timeout_s: float
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    cors_origins: tuple[str, ...] = field(default=())
    instance_id: str = "local"
    mqtt_shared_subscriptions: bool = False
    jetstream_replicas: int = 1
    # How much device traffic JetStream keeps on the NATS server's disk (DEVICE_IN, DEVICE_OUT):
    # the oldest messages go first, consumed or not, once older or past the byte cap (0: none).
    device_in_retention_hours: int = 168
    device_in_max_gb: float = 0.0
    # Notifications (services/notify): SMTP for e-mail targets (None: e-mail rules refused).
    smtp_url: str | None = None
    smtp_sender: str = "acuvim-console@localhost"
    notify_quiet_period_s: float = 120.0
    notify_retry_base_s: float = 10.0
    notify_pause_after_failures: int = 10
    # Private networks webhooks may reach (everything not public is refused otherwise: SSRF).
    notify_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def stream_prefix(self) -> str:
        """JetStream stream names are upper-case and may not contain dots."""
        return self.bus_root.upper().replace("-", "_")

    @property
    def device_in_max_age_s(self) -> int:
        return self.device_in_retention_hours * 3600

    @property
    def device_in_max_bytes(self) -> int:
        """JetStream's max_bytes of the device streams; -1 is JetStream's "no limit"."""
        return int(self.device_in_max_gb * GIB) if self.device_in_max_gb else -1


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {'/'.join(schemes)} URL with a host")
        parts.port  # noqa: B018 - raises ValueError on a non-numeric port
        return raw

    return parse


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("expected a port number 0-65535")
    return value


def _positive(kind: Callable[[str], T]) -> Callable[[str], T]:
    def parse(raw: str) -> T:
        value = kind(raw)
        if not value > 0:  # type: ignore[operator]
            raise ValueError("expected a positive number")
        return value

    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"expected {what}")
        return raw

    return parse


def _secret(raw: str) -> str:
    if len(raw.encode()) < 32:
        raise ValueError("expected at least 32 bytes")
    return raw


def _storage(raw: str) -> str:
    if raw.startswith("s3://"):
        if not urlsplit(raw).netloc:
            raise ValueError("expected s3://bucket/prefix")
        return raw
    if "://" in raw:
        raise ValueError("expected a folder or an s3://bucket/prefix URL")
    return raw


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return raw

    return parse


def _default_instance_id() -> str:
    """The host name as one subject token: stable across restarts (MQTT sessions rely on it)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64] or "local"


def _replicas(raw: str) -> int:
    value = int(raw)
    if value not in (1, 3, 5):
        raise ValueError("expected 1, 3 or 5 (JetStream replicas on a NATS cluster)")
    return value


def _stream_gb(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0 or 0 < value < _MIN_STREAM_GB:
        raise ValueError(f"expected 0 (no limit) or at least {_MIN_STREAM_GB} (GiB)")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated CIDRs; host bits set (10.1.2.3/16) are refused as a likely typo."""
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


def _read(env: Mapping[str, str], name: str, default: str | None, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            return None  # type: ignore[return-value]
        raw = default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is invalid: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ACUVIM_* variable; raise SettingsError on the first bad one."""
    e = os.environ if env is None else env
    s = str
    return Settings(
        database_url=_read(e, "ACUVIM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/acuvim",
                           _url(("postgresql", "postgres"))),
        mqtt_url=_read(e, "ACUVIM_MQTT_URL", "mqtt://127.0.0.1:1883", _url(("mqtt", "mqtts"))),
        nats_url=_read(e, "ACUVIM_NATS_URL", "nats://127.0.0.1:4222", _url(("nats", "tls"))),
        topic_prefix=_read(e, "ACUVIM_TOPIC_PREFIX", "acuvim",
                           _matching(_TOPIC_LEVEL, "one MQTT topic level of [A-Za-z0-9_-]")),
        http_host=_read(e, "ACUVIM_HTTP_HOST", "127.0.0.1", s),
        http_port=_read(e, "ACUVIM_HTTP_PORT", "8000", _port),
        public_base_url=_read(e, "ACUVIM_PUBLIC_BASE_URL", "http://127.0.0.1:8000",
                              _url(("http", "https"))).rstrip("/"),
        jwt_secret=_read(e, "ACUVIM_JWT_SECRET", None, _secret),
        admin_email=_read(e, "ACUVIM_ADMIN_EMAIL", None, s),
        admin_password=_read(e, "ACUVIM_ADMIN_PASSWORD", None, s),
        health_check_interval_s=_read(e, "ACUVIM_HEALTH_CHECK_INTERVAL_S", "30", _positive(float)),
        degraded_multiplier=_read(e, "ACUVIM_DEGRADED_MULTIPLIER", "3", _positive(float)),
        offline_multiplier=_read(e, "ACUVIM_OFFLINE_MULTIPLIER", "5", _positive(float)),
        command_timeout_s=_read(e, "ACUVIM_COMMAND_TIMEOUT_S", "60", _positive(float)),
        firmware_storage=_read(e, "ACUVIM_FIRMWARE_STORAGE", "./.data/firmware", _storage),
        telemetry_retention_days=_read(e, "ACUVIM_TELEMETRY_RETENTION_DAYS", "365", _positive(int)),
        data_dir=_read(e, "ACUVIM_DATA_DIR", "./.data", Path),
        bus_root=_read(e, "ACUVIM_BUS_ROOT", "acuvim",
                       _matching(_SUBJECT_TOKEN, "one NATS subject token of [A-Za-z0-9_-]")),
        log_format=_read(e, "ACUVIM_LOG_FORMAT", "auto", _choice("auto", "json", "pretty")),
        metrics_port=_read(e, "ACUVIM_METRICS_PORT", "0", _port),
        rpc_timeout_s=_read(e, "ACUVIM_RPC_TIMEOUT_S", "5", _positive(float)),
        access_token_ttl_s=_read(e, "ACUVIM_ACCESS_TOKEN_TTL_S", "86400", _positive(int)),
        refresh_token_ttl_s=_read(e, "ACUVIM_REFRESH_TOKEN_TTL_S", "604800", _positive(int)),
        cors_origins=_read(e, "ACUVIM_CORS_ORIGINS", "",
                           lambda raw: tuple(o.strip() for o in raw.split(",") if o.strip())),
        instance_id=_read(e, "ACUVIM_INSTANCE_ID", _default_instance_id(),
                          _matching(_SUBJECT_TOKEN, "a name of [A-Za-z0-9_-]")),
        mqtt_shared_subscriptions=_read(e, "ACUVIM_MQTT_SHARED_SUBSCRIPTIONS", "false", _bool),
        jetstream_replicas=_read(e, "ACUVIM_JETSTREAM_REPLICAS", "1", _replicas),
        device_in_retention_hours=_read(e, "ACUVIM_DEVICE_IN_RETENTION_HOURS", "168",
                                        _positive(int)),
        device_in_max_gb=_read(e, "ACUVIM_DEVICE_IN_MAX_GB", "0", _stream_gb),
        smtp_url=_read(e, "ACUVIM_SMTP_URL", None, _url(("smtp", "smtps"))),
        smtp_sender=_read(e, "ACUVIM_SMTP_SENDER", "acuvim-console@localhost", s),
        notify_quiet_period_s=_read(e, "ACUVIM_NOTIFY_QUIET_PERIOD_S", "120", _positive(float)),
        notify_retry_base_s=_read(e, "ACUVIM_NOTIFY_RETRY_BASE_S", "10", _positive(float)),
        notify_pause_after_failures=_read(e, "ACUVIM_NOTIFY_PAUSE_AFTER_FAILURES", "10",
                                          _positive(int)),
        notify_allowed_networks=_read(e, "ACUVIM_NOTIFY_ALLOWED_NETWORKS", "", _networks),
    )


def check_degraded_before_offline(settings: Settings) -> None:
    if settings.degraded_multiplier >= settings.offline_multiplier:
        raise SettingsError(
            "ACUVIM_DEGRADED_MULTIPLIER must be below ACUVIM_OFFLINE_MULTIPLIER "
            f"({settings.degraded_multiplier} >= {settings.offline_multiplier})"
        )
