"""`python -m services.supervisor` with nothing answering at the configured URLs: it starts an
embedded PostgreSQL, NATS and MQTT broker, the six services answer, a crashed service is
restarted, and SIGTERM stops everything (exit 0, no process left behind)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.support.console import free_port
from tests.support.supervisor import (
    STOP_TIMEOUT_S,
    Supervisor,
    closed_urls,
    command_line,
    launched,
    scratch_dir,
    still_running,
    supervisor_env,
)
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def fallback() -> Iterator[Supervisor]:
    with scratch_dir("acuvim-fallback-") as data_dir:
        env = supervisor_env(data_dir, free_port(), **closed_urls())
        with launched(env, data_dir / "supervisor.log") as supervisor:
            yield supervisor


async def test_starts_embedded_dependencies_and_answers(fallback: Supervisor) -> None:
    await fallback.wait_healthy()
    log = fallback.log()
    for what in ("PostgreSQL", "NATS", "MQTT"):
        assert re.search(rf"{what} does not answer at .*: started an embedded", log), what
    reply = await fallback.login()
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "bearer"


def health_service(supervisor: Supervisor) -> list[int]:
    return [p for p in supervisor.tree() if "-m services.health" in command_line(p)]


async def test_a_crashed_service_is_restarted(fallback: Supervisor) -> None:
    await fallback.wait_healthy()
    health = health_service(fallback)
    assert len(health) == 1
    os.kill(health[0], signal.SIGKILL)
    await fallback.wait_log("health exited with code -9; restarting it", timeout_s=10)

    async def back() -> bool:
        new = health_service(fallback)
        return bool(new) and new != health and await fallback.healthy()

    await eventually(back, timeout_s=30, interval_s=0.5, what="health service back")


async def test_a_crashed_embedded_dependency_is_started_again(fallback: Supervisor) -> None:
    await fallback.wait_healthy()
    nats = [p for p in fallback.tree() if "nats-server" in command_line(p)]
    assert len(nats) == 1
    os.kill(nats[0], signal.SIGKILL)
    await fallback.wait_log("the embedded nats runs again at", timeout_s=20)
    # The services reconnect to it, on the same port; JetStream kept its streams on disk.
    await fallback.wait_healthy(timeout_s=30)


async def test_sigterm_stops_everything(fallback: Supervisor) -> None:
    await fallback.wait_healthy()
    tree = fallback.tree()
    names = " ".join(command_line(p) for p in tree)
    for program in ("nats-server", "postgres", "services.gateway", "services.ingest"):
        assert program in names, f"{program} not among {names}"
    fallback.proc.send_signal(signal.SIGTERM)
    started_s = time.monotonic()
    assert fallback.wait() == 0, fallback.log()[-3000:]
    assert time.monotonic() - started_s < STOP_TIMEOUT_S
    left = still_running(tree)
    assert not left, f"left running: {left}"
    assert "console stopped" in fallback.log()
