"""PostgreSQL: create the database if missing, one pool per service, forward-only migrations.

Each service owns one schema (its name); its migrations are `NNN_name.sql` files applied in
order, once, recorded in `<schema>.schema_migrations`, under an advisory lock so that replicas
starting together apply them once. Pool connections use the service's schema as search_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Errors that mean "the database is not reachable right now" (retry), not "the query is wrong".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


async def ensure_database(url: str) -> None:
    """Create the database named in `url` when it does not exist yet."""
    name = database_name(url)
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return
    admin = await asyncpg.connect(_with_database(url, "postgres"), timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        log.info("created database %s", name)
    except asyncpg.DuplicateDatabaseError:
        pass
    finally:
        await admin.close()


async def create_pool(url: str, schema: str, *, min_size: int = 1, max_size: int = 10,
                      ) -> asyncpg.Pool:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"bad schema name {schema!r}")
    await ensure_database(url)

    async def init(conn: asyncpg.Connection) -> None:
        await conn.set_type_codec("jsonb", encoder=_json_text, decoder=_json_load,
                                  schema="pg_catalog", format="text")
        await conn.set_type_codec("json", encoder=_json_text, decoder=_json_load,
                                  schema="pg_catalog", format="text")

    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=init, command_timeout=60,
        server_settings={"search_path": f"{schema},public", "application_name": f"acuvim-{schema}"},
    )
    assert pool is not None
    return pool


def _json_text(value: object) -> str:
    from libs.common.codec import encode

    return encode(value).decode()


def _json_load(text: str) -> object:
    import msgspec

    return msgspec.json.decode(text)


def list_migrations(folder: Path) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration file, in order; refuses a badly named one."""
    found: list[tuple[int, str, str]] = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration {path} is not named NNN_name.sql")
        found.append((int(match.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a number in {folder}")
    return found


async def migrate(pool: asyncpg.Pool, schema: str, folder: Path) -> list[str]:
    """Apply the migrations of `folder` not applied yet; answer the names applied now."""
    migrations = list_migrations(folder)
    lock_key = int.from_bytes(hashlib.sha256(f"acuvim:{schema}".encode()).digest()[:8], "big",
                              signed=True)
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in
                    await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')}
            for version, name, sql in migrations:
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    await conn.execute(sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                        version, name,
                    )
                applied_now.append(name)
                log.info("applied migration %s.%s", schema, name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied_now


async def ping(pool: asyncpg.Pool) -> None:
    async with pool.acquire(timeout=2) as conn:
        await conn.fetchval("SELECT 1")
