"""The JWT signing key: ACUVIM_JWT_SECRET, or one generated once and kept in the data folder."""

from __future__ import annotations

import os
import secrets as random
from pathlib import Path

from libs.common.settings import Settings

SECRET_FILE = "jwt_secret"  # noqa: S105 - a file name, not a secret


def resolve_jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = random.token_urlsafe(48)
    # O_EXCL: two gateways starting together keep one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(candidate)
    return candidate
