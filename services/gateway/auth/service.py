"""Users and tokens (the gateway's own schema). Placeholder until the auth work lands."""

from __future__ import annotations

import asyncpg

from libs.common import db
from services.gateway.auth.tokens import Principal


class AuthService:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        await db.ping(self.pool)

    async def is_revoked(self, principal: Principal) -> bool:
        return False
