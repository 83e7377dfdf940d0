"""Users and tokens: login, refresh with rotation and reuse detection, logout, register, me.

Access tokens are stateless JWTs (any valid signature is accepted until it expires or is
revoked); refresh tokens are opaque, stored as sha256, single use, grouped in families.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import Counter

from libs.common import db
from libs.common.errors import Conflict, NotFound, Unauthorized
from services.gateway.auth import repo
from services.gateway.auth.passwords import hash_password, needs_rehash, verify_password
from services.gateway.auth.revocation import RevocationList
from services.gateway.auth.schemas import TokenPair, UserOut, normalize_email
from services.gateway.auth.throttle import LoginThrottle
from services.gateway.auth.tokens import Principal, issue_access_token

log = logging.getLogger(__name__)
# A pooled connection (asyncpg's proxy) or a plain one.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

LOGINS = Counter("acuvim_gateway_logins_total", "Login attempts", ["outcome"])
REFRESHES = Counter("acuvim_gateway_token_refreshes_total", "Refresh attempts", ["outcome"])

BAD_LOGIN = "wrong e-mail or password"
BAD_REFRESH = "invalid or expired refresh token"


def refresh_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def user_out(user: repo.UserRow) -> UserOut:
    return UserOut(id=user.id, email=user.email, role=user.role,  # type: ignore[arg-type]
                   created_at=user.created_at)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class AuthService:
    def __init__(self, pool: asyncpg.Pool, *, jwt_secret: str, access_ttl_s: int,
                 refresh_ttl_s: int, throttle: LoginThrottle | None = None) -> None:
        self.pool = pool
        self.jwt_secret = jwt_secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.throttle = throttle or LoginThrottle()
        self.revoked = RevocationList(pool, access_ttl_s)

    async def ping(self) -> None:
        await db.ping(self.pool)

    async def is_revoked(self, principal: Principal) -> bool:
        return await self.revoked.is_revoked(principal)

    # -- login and refresh ---------------------------------------------------------------------
    async def login(self, email: str, password: str, address: str) -> TokenPair:
        account = normalize_email(email)
        self.throttle.check(account, address)
        async with self.pool.acquire() as conn:
            user = await repo.get_user_by_email(conn, account)
        ok = await verify_password(user.password_hash if user else None, password)
        if user is None or not ok or not user.active:
            self.throttle.failed(account, address)
            LOGINS.labels(outcome="refused").inc()
            raise Unauthorized(BAD_LOGIN)
        self.throttle.succeeded(account)
        LOGINS.labels(outcome="ok").inc()
        async with self.pool.acquire() as conn:
            if needs_rehash(user.password_hash):
                await conn.execute(repo.UPDATE_USER_HASH, user.id,
                                   await hash_password(password))
            return await self._issue(conn, user, family_id=str(uuid.uuid4()))

    async def refresh(self, token: str) -> TokenPair:
        async with self.pool.acquire() as conn:
            outcome, pair = await self._rotate(conn, refresh_hash(token))
        REFRESHES.labels(outcome=outcome).inc()
        if pair is None:
            if outcome == "reused":
                raise Unauthorized("refresh token already used; its sessions are revoked")
            raise Unauthorized(BAD_REFRESH)
        return pair

    async def _rotate(self, conn: Conn,
                      token_hash: bytes) -> tuple[str, TokenPair | None]:
        """Mark the token used and issue the next of its family, in one transaction; a token
        used before means it leaked: its whole family is revoked (committed, then refused)."""
        async with conn.transaction():
            row = repo.refresh_of(await conn.fetchrow(repo.LOCK_REFRESH_BY_HASH, token_hash))
            if row is None or row.revoked_at is not None:
                return "unknown" if row is None else "revoked", None
            if row.used_at is not None:
                await conn.execute(repo.REVOKE_FAMILY, row.family_id)
                self.revoked.add(family_id=row.family_id)
                log.warning("refresh token reused: family %s of user %s revoked",
                            row.family_id, row.user_id)
                return "reused", None
            user = await repo.get_user_by_id(conn, row.user_id)
            expired = row.expires_at <= datetime.now(UTC)
            if expired or user is None or not user.active:
                return "expired" if expired else "inactive", None
            await conn.execute(repo.MARK_REFRESH_USED, row.id)
            return "ok", await self._issue(conn, user, family_id=row.family_id)

    async def _issue(self, conn: Conn, user: repo.UserRow, *,
                     family_id: str) -> TokenPair:
        refresh_token = secrets.token_urlsafe(32)
        await conn.execute(repo.INSERT_REFRESH, family_id, user.id, refresh_hash(refresh_token),
                           float(self.refresh_ttl_s))
        access_token, _ = issue_access_token(
            self.jwt_secret, user_id=user.id, email=user.email, role=user.role,
            ttl_s=self.access_ttl_s, family_id=family_id)
        return TokenPair(access_token=access_token, refresh_token=refresh_token,
                         expires_in=self.access_ttl_s)

    # -- logout --------------------------------------------------------------------------------
    async def logout(self, principal: Principal, refresh_token: str | None) -> None:
        """Revoke the caller's access token (until it expires) and its refresh family: the one
        it was issued from, and the given refresh token's (when it is the caller's)."""
        families = {principal.family_id} if principal.family_id else set()
        async with self.pool.acquire() as conn, conn.transaction():
            if refresh_token:
                row = await conn.fetchrow(repo.GET_FAMILY_OF_HASH, refresh_hash(refresh_token))
                if row is not None and row["user_id"] == principal.user_id:
                    families.add(row["family_id"])
            for family_id in families:
                await conn.execute(repo.REVOKE_FAMILY, family_id)
            await conn.execute(repo.INSERT_REVOKED_JTI, principal.token_id,
                               principal.expires_at)
        self.revoked.add(token_id=principal.token_id)
        for family_id in families:
            self.revoked.add(family_id=family_id)

    # -- users ---------------------------------------------------------------------------------
    async def register(self, email: str, password: str, role: str) -> UserOut:
        password_hash = await hash_password(password)
        async with self.pool.acquire() as conn:
            user = await repo.insert_user(conn, normalize_email(email), password_hash, role)
        if user is None:
            raise Conflict(f"a user with e-mail {normalize_email(email)!r} exists")
        log.info("user %s registered with role %s", user.email, user.role)
        return user_out(user)

    async def me(self, principal: Principal) -> UserOut:
        user = None
        if _is_uuid(principal.user_id):
            async with self.pool.acquire() as conn:
                user = await repo.get_user_by_id(conn, principal.user_id)
        if user is None:
            raise NotFound("the token's user does not exist")
        return user_out(user)

    async def purge_expired(self) -> None:
        """Forget revocations and refresh tokens past their expiry (periodic housekeeping)."""
        async with self.pool.acquire() as conn:
            await conn.execute(repo.PURGE_REVOKED_ACCESS)
            await conn.execute(repo.PURGE_EXPIRED_REFRESH)
