"""SQL of the gateway's schema (users, refresh tokens, revoked access tokens)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec


class UserRow(msgspec.Struct, frozen=True):
    id: str
    email: str
    password_hash: str
    role: str
    active: bool
    created_at: datetime


class RefreshRow(msgspec.Struct, frozen=True):
    id: str
    family_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


USER_COLUMNS = "id::text, email, password_hash, role, active, created_at"

GET_USER_BY_EMAIL = f"SELECT {USER_COLUMNS} FROM users WHERE email = $1"
GET_USER_BY_ID = f"SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid"
INSERT_USER = f"""
INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)
ON CONFLICT (email) DO NOTHING
RETURNING {USER_COLUMNS}
"""
UPDATE_USER_HASH = (
    "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1::uuid")
ANY_USER = "SELECT EXISTS (SELECT 1 FROM users)"
# Taken inside the transaction that creates the first admin: gateways starting together
# serialise on it, so only one of them sees an empty table.
LOCK_FIRST_ADMIN = "SELECT pg_advisory_xact_lock(hashtext('acuvim:gateway:first-admin'))"

INSERT_REFRESH = """
INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at)
VALUES ($1::uuid, $2::uuid, $3, now() + make_interval(secs => $4))
"""
LOCK_REFRESH_BY_HASH = """
SELECT id::text, family_id::text, user_id::text, expires_at, used_at, revoked_at
FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE
"""
MARK_REFRESH_USED = "UPDATE refresh_tokens SET used_at = now() WHERE id = $1::uuid"
REVOKE_FAMILY = """
UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1::uuid AND revoked_at IS NULL
"""
GET_FAMILY_OF_HASH = (
    "SELECT family_id::text, user_id::text FROM refresh_tokens WHERE token_hash = $1")
INSERT_REVOKED_JTI = """
INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, to_timestamp($2))
ON CONFLICT (jti) DO NOTHING
"""
# What AuthMiddleware refuses: access tokens logged out, and families revoked recently enough
# that access tokens issued from them may still be unexpired.
LIST_REVOKED_ACCESS = "SELECT jti FROM revoked_access_tokens WHERE expires_at > now()"
LIST_REVOKED_FAMILIES = """
SELECT DISTINCT family_id::text FROM refresh_tokens
WHERE revoked_at IS NOT NULL AND revoked_at > now() - make_interval(secs => $1)
"""
PURGE_REVOKED_ACCESS = "DELETE FROM revoked_access_tokens WHERE expires_at <= now()"
# Refresh tokens past their expiry (plus a day of grace, so a late reuse is still recognised).
PURGE_EXPIRED_REFRESH = "DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'"


def user_of(record: asyncpg.Record | None) -> UserRow | None:
    return None if record is None else UserRow(**dict(record))


def refresh_of(record: asyncpg.Record | None) -> RefreshRow | None:
    return None if record is None else RefreshRow(**dict(record))


async def get_user_by_email(conn: Any, email: str) -> UserRow | None:
    return user_of(await conn.fetchrow(GET_USER_BY_EMAIL, email))


async def get_user_by_id(conn: Any, user_id: str) -> UserRow | None:
    return user_of(await conn.fetchrow(GET_USER_BY_ID, user_id))


async def insert_user(conn: Any, email: str, password_hash: str, role: str) -> UserRow | None:
    """The new user, or None when the e-mail is taken."""
    return user_of(await conn.fetchrow(INSERT_USER, email, password_hash, role))
