"""deploy/healthcheck.py, the containers' HEALTHCHECK, against real running services."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from libs.common.subjects import SERVICES
from tests.support.console import ROOT, Console, free_port
from tests.support.waiting import eventually

BACKEND = SERVICES


async def healthcheck(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.healthcheck", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.parametrize("service", [*BACKEND, "gateway"])
async def test_a_running_service_is_healthy(console: Console, service: str) -> None:
    code, out = await healthcheck(console.env(), service)
    assert code == 0, out
    assert f"{service} ok" in out


async def test_the_service_can_come_from_the_environment(console: Console) -> None:
    code, out = await healthcheck(console.env(ACUVIM_SERVICE="telemetry"))
    assert (code, out.strip()) == (0, "telemetry ok")


async def test_a_service_nobody_runs_is_unhealthy(console: Console) -> None:
    # Another bus root: the same NATS, but no replica of any service listens there.
    code, out = await healthcheck(console.env(ACUVIM_BUS_ROOT="nobody-here"), "telemetry")
    assert code == 1
    assert "not running" in out


async def test_an_unreachable_bus_is_unhealthy(console: Console) -> None:
    env = console.env(ACUVIM_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    code, out = await healthcheck(env, "health")
    assert code == 1
    assert "NATS not reachable" in out


async def test_a_gateway_that_does_not_answer_is_unhealthy(console: Console) -> None:
    code, out = await healthcheck(console.env(ACUVIM_HTTP_PORT=str(free_port())), "gateway")
    assert code == 1
    assert "does not answer" in out


async def test_an_unknown_service_or_none_is_an_error(console: Console) -> None:
    code, out = await healthcheck(console.env(), "billing")
    assert code == 1 and "unknown service" in out
    env = {k: v for k, v in console.env().items() if k != "ACUVIM_SERVICE"}
    code, out = await healthcheck(env)
    assert code == 2 and "usage" in out


@pytest.fixture(scope="module")
async def lone_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """A gateway with no service behind it: /api/health answers 503, the gateway itself ok."""
    lone = Console.for_session(Path(tmp_path_factory.mktemp("lone-gateway")))
    lone.start("gateway")

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(base_url=lone.base_url, timeout=3) as client:
                reply = await client.get("/api/health")
        except httpx.HTTPError:
            return False
        return reply.status_code == 503 and reply.json()["services"]["gateway"] == "ok"

    try:
        await eventually(answers, timeout_s=30, what="lone gateway answering")
        yield lone
    finally:
        lone.stop_all()
        await lone.drop_database()


async def test_a_gateway_whose_services_are_down_is_itself_healthy(lone_gateway: Console) -> None:
    """Docker must not restart a gateway because a service behind it is down."""
    code, out = await healthcheck(lone_gateway.env(), "gateway")
    assert code == 0, out
    assert "a service behind it is down" in out
