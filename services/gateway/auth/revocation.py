"""Which access tokens are refused before they expire: logged-out token ids and revoked families.

The lists are small (only tokens revoked within one access-token lifetime), so each gateway keeps
them in memory and reloads them every RELOAD_EVERY_S: a revocation made by this gateway counts
at once, one made by another replica within that delay. No database round trip per request.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from services.gateway.auth import repo
from services.gateway.auth.tokens import Principal

log = logging.getLogger(__name__)

RELOAD_EVERY_S = 2.0


class RevocationList:
    def __init__(self, pool: asyncpg.Pool, access_ttl_s: int) -> None:
        self.pool = pool
        self.access_ttl_s = access_ttl_s
        self.token_ids: set[str] = set()
        self.family_ids: set[str] = set()
        self.loaded_at = -RELOAD_EVERY_S
        self.lock = asyncio.Lock()
        # Added while a reload's query runs (which may not see them yet): kept across the swap.
        self.added_tokens: set[str] = set()
        self.added_families: set[str] = set()

    def add(self, *, token_id: str | None = None, family_id: str | None = None) -> None:
        if token_id:
            self.token_ids.add(token_id)
            self.added_tokens.add(token_id)
        if family_id:
            self.family_ids.add(family_id)
            self.added_families.add(family_id)

    async def is_revoked(self, principal: Principal) -> bool:
        if time.monotonic() - self.loaded_at >= RELOAD_EVERY_S:
            await self._reload()
        return principal.token_id in self.token_ids or (
            principal.family_id is not None and principal.family_id in self.family_ids)

    async def _reload(self) -> None:
        async with self.lock:
            if time.monotonic() - self.loaded_at < RELOAD_EVERY_S:
                return  # another request reloaded while this one waited
            self.added_tokens.clear()
            self.added_families.clear()
            try:
                async with self.pool.acquire(timeout=2) as conn:
                    tokens = await conn.fetch(repo.LIST_REVOKED_ACCESS)
                    families = await conn.fetch(repo.LIST_REVOKED_FAMILIES,
                                                float(self.access_ttl_s))
            except Exception as exc:
                # Keep the last lists: a database hiccup must not lock every user out.
                log.warning("could not reload revoked tokens (%s: %s)", type(exc).__name__, exc)
                self.loaded_at = time.monotonic()
                return
            self.token_ids = {r["jti"] for r in tokens} | self.added_tokens
            self.family_ids = {r["family_id"] for r in families} | self.added_families
            self.loaded_at = time.monotonic()
