"""`make run` end to end, with this machine's PostgreSQL, NATS and Mosquitto: the console
answers, the first admin logs in, and Ctrl-C (SIGINT to the terminal's process group) stops
everything cleanly."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support.console import MQTT_URL, NATS_URL, PG_URL, free_port
from tests.support.supervisor import (
    Supervisor,
    launched,
    scratch_dir,
    still_running,
    supervisor_env,
)

pytestmark = pytest.mark.e2e

MAKE_RUN = ("make", "--no-print-directory", "run")


@pytest.fixture(scope="module")
async def make_run() -> AsyncIterator[Supervisor]:
    database = "acuvim_e2e_" + os.urandom(4).hex()
    with scratch_dir("acuvim-make-run-") as data_dir:
        env = supervisor_env(data_dir, free_port(), ACUVIM_DATABASE_URL=f"{PG_URL}/{database}",
                             ACUVIM_NATS_URL=NATS_URL, ACUVIM_MQTT_URL=MQTT_URL)
        try:
            # Its own process group, as a terminal's foreground job: Ctrl-C reaches make and all.
            with launched(env, data_dir / "make-run.log", command=MAKE_RUN) as supervisor:
                yield supervisor
        finally:
            conn = await asyncpg.connect(f"{PG_URL}/postgres")
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await conn.close()


async def test_make_run_serves_the_api_and_stops_on_ctrl_c(make_run: Supervisor) -> None:
    await make_run.wait_healthy()
    log = make_run.log()
    for what in ("PostgreSQL", "NATS", "MQTT"):
        assert re.search(rf"using {what} at ", log), what
    assert "started an embedded" not in log
    login = await make_run.login()
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    async with httpx.AsyncClient(base_url=make_run.base_url, timeout=10) as http:
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        swagger = await http.get("/swagger")
        assert swagger.status_code == 200

    tree = make_run.tree()
    make_run.interrupt()
    code = make_run.wait()
    log = make_run.log()
    assert "console stopped" in log, log[-3000:]
    # make itself reports the interrupt (exit 2 or killed by SIGINT); the console exited 0.
    assert code in (0, 2, -signal.SIGINT), log[-3000:]
    assert "Error 1" not in log
    left = still_running(tree)
    assert not left, f"left running: {left}"
