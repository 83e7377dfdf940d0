"""A gateway alone (no other service) for the auth and API-frame tests, plus helpers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.console import Console

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="session")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """One gateway process in its own database, first admin from ACUVIM_ADMIN_* (the defaults
    of tests/support/console.py)."""
    async with Console.running(Path(tmp_path_factory.mktemp("gateway")), ("gateway",),
                               timeout_s=30) as c:
        yield c


def some_address() -> str:
    """A client address of its own (X-Forwarded-For, trusted from 127.0.0.1 by uvicorn), so
    failed logins of one test never count against another's address."""
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def login(http: httpx.AsyncClient, email: str, password: str,
                address: str | None = None) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password},
                           headers={"X-Forwarded-For": address or some_address()})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.headers
    body: dict[str, Any] = reply.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert "Traceback" not in reply.text and 'File "' not in reply.text
    return body
