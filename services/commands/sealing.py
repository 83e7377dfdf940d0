"""Configuration secrets (Wi-Fi and GSM passwords): sealed at rest, masked everywhere else.

The device needs its passwords, so they travel in clear only in the `set_config` DeviceCommand
bound for the device (DEVICE_OUT, then MQTT). In the database they are Fernet-encrypted
("sealed"); in RPC answers, logs, history and facts they are masked as "********".
The key comes from ACUVIM_JWT_SECRET (derived, so one secret to manage) or, without it, from a
key file generated once in ACUVIM_DATA_DIR.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from libs.common.settings import Settings

MASK = "********"
SECRET_KEYS = frozenset({"password"})
SEALED_PREFIX = "sealed:v1:"
KEY_FILE = "config_secrets.key"


def key_for(settings: Settings) -> bytes:
    if settings.jwt_secret:
        digest = hashlib.sha256(b"acuvim-config-secrets:" + settings.jwt_secret.encode()).digest()
        return base64.urlsafe_b64encode(digest)
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: replicas starting together keep one key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return path.read_bytes().strip()


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, config: Any) -> Any:
        """A copy with every secret encrypted (already sealed ones kept)."""
        return _map_secrets(config, self._seal_one)

    def unseal(self, config: Any) -> Any:
        """A copy with every secret in clear (for the device only)."""
        return _map_secrets(config, self._unseal_one)

    def _seal_one(self, value: Any) -> Any:
        if not isinstance(value, str) or value.startswith(SEALED_PREFIX):
            return value
        return SEALED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def _unseal_one(self, value: Any) -> Any:
        if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
            return value
        try:
            return self._fernet.decrypt(value[len(SEALED_PREFIX):].encode()).decode()
        except InvalidToken:
            return None  # sealed with another key: unknown, never guessed


def mask(config: Any) -> Any:
    """A copy with every secret replaced by the mask: what people and facts may see."""
    return _map_secrets(config, lambda value: None if value is None else MASK)


def merge(base: dict[str, Any] | None, change: dict[str, Any]) -> dict[str, Any]:
    """`change` laid over `base`, section by section (a partial config updates what it names)."""
    merged = dict(base or {})
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def differences(desired: dict[str, Any], reported: dict[str, Any] | None,
                prefix: str = "") -> list[str]:
    """Paths (`wifi.ssid`) of the desired settings the device has not reported as such."""
    found: list[str] = []
    for key, want in desired.items():
        path = f"{prefix}{key}"
        have = (reported or {}).get(key)
        if isinstance(want, dict):
            found += differences(want, have if isinstance(have, dict) else {}, f"{path}.")
        elif want != have:
            found.append(path)
    return found


def _map_secrets(value: Any, change: Any) -> Any:
    if isinstance(value, dict):
        return {k: change(v) if k in SECRET_KEYS else _map_secrets(v, change)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_map_secrets(v, change) for v in value]
    return value
