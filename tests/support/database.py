"""A throwaway database with one service's migrations applied, for repository-level tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from libs.common import db
from tests.support.console import PG_URL


@contextlib.asynccontextmanager
async def migrated_pool(schema: str, migrations: Path, max_size: int = 6
                        ) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database `acuvim_<schema>_<random>` migrated like the service at start;
    the database is dropped afterwards."""
    name = f"acuvim_{schema}_{uuid.uuid4().hex[:8]}"
    pool = await db.create_pool(f"{PG_URL}/{name}", schema, max_size=max_size)
    try:
        await db.migrate(pool, schema, migrations)
        yield pool
    finally:
        await pool.close()
        admin = await asyncpg.connect(f"{PG_URL}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
