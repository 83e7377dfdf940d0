"""Gateway start: the first admin (from the environment, or generated and printed once, also
when two gateways start together), CORS when configured, a bad setting stops it (exit 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login
from tests.support.console import ROOT, Console, free_port
from tests.support.waiting import eventually

GENERATED = re.compile(r"first admin created: e-mail admin@localhost password (\S+)")


@pytest.fixture
async def fresh(tmp_path: Path) -> AsyncIterator[Console]:
    """A console of its own (empty database), gateways started by the test."""
    c = Console.for_session(tmp_path, ACUVIM_ADMIN_EMAIL="", ACUVIM_ADMIN_PASSWORD="",
                            ACUVIM_CORS_ORIGINS="https://ops.example.com")
    try:
        yield c
    finally:
        c.stop_all()
        await c.delete_streams()
        await c.drop_database()


def messages(log: str) -> list[str]:
    return [json.loads(line)["msg"] for line in log.splitlines() if line.startswith("{")]


async def test_first_admin_from_the_environment(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        assert (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
    log = gateway.log("gateway")
    assert f"first admin created from ACUVIM_ADMIN_EMAIL: {ADMIN_EMAIL}" in messages(log)
    assert ADMIN_PASSWORD not in log


async def test_generated_admin_password_is_printed_once(fresh: Console) -> None:
    second_port = free_port()
    fresh.start("gateway")  # two gateways race for the empty users table
    fresh.start("gateway", ACUVIM_HTTP_PORT=str(second_port))
    await fresh.wait_healthy(services=(), timeout_s=30)

    async def both_up() -> bool:
        async with httpx.AsyncClient(timeout=3) as http:
            try:
                reply = await http.get(f"http://127.0.0.1:{second_port}/api/health")
            except httpx.TransportError:
                return False
        return reply.status_code in (200, 503)

    await eventually(both_up, timeout_s=30, what="second gateway up")
    lines = [m for m in messages(fresh.log("gateway")) if GENERATED.search(m)]
    assert len(lines) == 1, lines
    password = GENERATED.search(lines[0]).group(1)  # type: ignore[union-attr]
    warnings = [json.loads(line) for line in fresh.log("gateway").splitlines()
                if password in line]
    assert [w["level"] for w in warnings] == ["warning"]

    async with fresh.client(role=None) as http:
        reply = await login(http, "admin@localhost", password)
        assert reply.status_code == 200, reply.text

    fresh.stop("gateway")
    fresh.start("gateway")  # a restart finds a user and prints nothing
    await fresh.wait_healthy(services=(), timeout_s=30)
    assert fresh.log("gateway").count(password) == 1


async def test_cors_answers_only_when_origins_are_configured(fresh: Console) -> None:
    fresh.start("gateway")
    await fresh.wait_healthy(services=(), timeout_s=30)
    async with fresh.client(role=None) as http:
        allowed = await http.options("/api/auth/login", headers={
            "Origin": "https://ops.example.com", "Access-Control-Request-Method": "POST"})
        other = await http.get("/api/health", headers={"Origin": "https://evil.example.com"})
    assert allowed.status_code in (200, 204), allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert "access-control-allow-origin" not in other.headers


def test_a_bad_setting_stops_the_gateway_with_one_line(tmp_path: Path) -> None:
    console = Console.for_session(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway"], cwd=ROOT, capture_output=True, timeout=30,
        env=console.env(ACUVIM_HTTP_PORT="abc"), check=False)
    assert done.returncode == 2
    output = (done.stdout + done.stderr).decode().strip().splitlines()
    assert len(output) == 1, output
    assert "ACUVIM_HTTP_PORT" in output[0] and "abc" in output[0]
