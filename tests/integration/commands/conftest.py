"""Fixtures of the command tests: an operator's HTTP client on the session console."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.console import Console


@pytest.fixture
async def api(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client("operator") as client:
        yield client
