"""The first admin: created at gateway start when no user exists.

From ACUVIM_ADMIN_EMAIL / ACUVIM_ADMIN_PASSWORD when set; otherwise admin@localhost with a
generated password printed once (one warning line), since nothing else could log in. Gateways
starting together serialise on an advisory lock, so exactly one creates it and prints it.
"""

from __future__ import annotations

import logging
import secrets

import asyncpg

from libs.common.settings import Settings, SettingsError
from services.gateway.auth import repo
from services.gateway.auth.passwords import hash_password
from services.gateway.auth.schemas import EMAIL, MIN_PASSWORD_CHARS, normalize_email

log = logging.getLogger(__name__)

GENERATED_ADMIN_EMAIL = "admin@localhost"


def admin_credentials(settings: Settings) -> tuple[str, str, bool]:
    """(e-mail, password, generated?); a bad configured value is a SettingsError (exit 2)."""
    email = normalize_email(settings.admin_email or GENERATED_ADMIN_EMAIL)
    if not EMAIL.match(email):
        raise SettingsError(f"ACUVIM_ADMIN_EMAIL={settings.admin_email!r} is invalid: "
                            "expected an e-mail address")
    if settings.admin_password is None:
        return email, secrets.token_urlsafe(18), True
    if len(settings.admin_password) < MIN_PASSWORD_CHARS:
        raise SettingsError(f"ACUVIM_ADMIN_PASSWORD is invalid: expected at least "
                            f"{MIN_PASSWORD_CHARS} characters")
    return email, settings.admin_password, False


async def ensure_first_admin(pool: asyncpg.Pool, settings: Settings) -> bool:
    """Create the first admin when no user exists; answer whether this call created it."""
    email, password, generated = admin_credentials(settings)
    async with pool.acquire() as conn:
        if await conn.fetchval(repo.ANY_USER):
            return False
        password_hash = await hash_password(password)
        async with conn.transaction():
            await conn.execute(repo.LOCK_FIRST_ADMIN)
            if await conn.fetchval(repo.ANY_USER):
                return False
            created = await repo.insert_user(conn, email, password_hash, "admin")
    if created is None:
        return False
    if generated:
        # The only time this password is ever shown: it is not stored anywhere but as a hash.
        log.warning("first admin created: e-mail %s password %s (shown this once only; keep it)",
                    email, password)
    else:
        log.info("first admin created from ACUVIM_ADMIN_EMAIL: %s", email)
    return True
