"""Shared fixtures: one console per test session against the machine's real services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from tests.support.console import ALL_SERVICES, NATS_URL, Console


@pytest.fixture(scope="session")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """All six services running, with a 1 s health sweep and short command timeout."""
    async with Console.running(Path(tmp_path_factory.mktemp("console")), ALL_SERVICES,
                               ACUVIM_HEALTH_CHECK_INTERVAL_S="1",
                               ACUVIM_COMMAND_TIMEOUT_S="3") as c:
        yield c


@pytest.fixture(scope="module")
async def nc() -> AsyncIterator[NATS]:
    """A connection to the machine's NATS, for tests that publish or read the bus directly."""
    client = await nats.connect(NATS_URL)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def device_id() -> str:
    """A fresh device id, unique to the test (ACV- and 12 upper-case hex digits)."""
    return "ACV-" + uuid.uuid4().hex[:12].upper()
