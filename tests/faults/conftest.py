"""The fault tests' console: all six services against a NATS, a Mosquitto and a PostgreSQL of
their own (tests/faults/servers.py), which the tests kill, pause and restart.

They run in `make test` and `make test-faults` (both set ACUVIM_TEST_FAULTS=1; about 3 minutes
on this machine); a bare `pytest` skips them, since they take minutes and stop servers on
purpose.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.faults import servers
from tests.support.console import ALL_SERVICES, Console

ENABLED = os.environ.get("ACUVIM_TEST_FAULTS") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None if ENABLED else "fault tests run with make test-faults (ACUVIM_TEST_FAULTS=1)"
    reason = reason or servers.available()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(skip)


@dataclass
class Servers:
    nats: servers.Server
    mqtt: servers.Server
    postgres: servers.Server


@pytest.fixture(scope="session")
async def fault_servers() -> AsyncIterator[Servers]:
    folder = servers.base_folder()
    own = Servers(servers.nats_server(folder), servers.mosquitto_server(folder),
                  servers.postgres_server(folder))
    for server in (own.nats, own.mqtt, own.postgres):
        await server.start()
    try:
        yield own
    finally:
        for server in (own.nats, own.mqtt, own.postgres):
            await server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def faulty(fault_servers: Servers,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """All six services, a 1 s health sweep, against the fault servers."""
    c = Console.for_session(tmp_path_factory.mktemp("faults"),
                            ACUVIM_HEALTH_CHECK_INTERVAL_S="1")
    c.pg_url = fault_servers.postgres.url
    c.nats_url = fault_servers.nats.url
    c.mqtt_url = fault_servers.mqtt.url
    c.start(*ALL_SERVICES)
    try:
        await c.wait_healthy(timeout_s=90)
        yield c
    finally:
        c.stop_all()


@pytest.fixture(autouse=True)
async def whole_console(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each fault test starts from a healthy console (a failed one may have left a service
    down) and leaves the servers running."""
    if "faulty" not in request.fixturenames:
        yield
        return
    c: Console = request.getfixturevalue("faulty")
    own: Servers = request.getfixturevalue("fault_servers")
    for server in (own.nats, own.mqtt, own.postgres):
        if server.proc is None or server.proc.poll() is not None:
            await server.start()
        else:
            server.resume()  # a failed test may have left it paused
    for name in ALL_SERVICES:
        if not any(p.poll() is None for p in c.processes.get(name, [])):
            c.processes.pop(name, None)
            c.start(name)
    await c.wait_healthy(timeout_s=60)
    yield
