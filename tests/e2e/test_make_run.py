"""`make run` end to end, with this machine's PostgreSQL, NATS and Mosquitto: the console
answers, the first admin logs in, and Ctrl-C (SIGINT to the terminal's process group) stops
everything cleanly."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.integration.test_supervisor_fallback import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Running,
    alive,
    command_line,
    descendants,
    healthy,
    supervisor_env,
    world_readable_tmp,
)
from tests.support.console import MQTT_URL, NATS_URL, PG_URL, ROOT, free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def make_run() -> AsyncIterator[Running]:
    data_dir = world_readable_tmp("acuvim-make-run-")
    http_port = free_port()
    database = "acuvim_e2e_" + os.urandom(4).hex()
    env = supervisor_env(data_dir, http_port, ACUVIM_DATABASE_URL=f"{PG_URL}/{database}",
                         ACUVIM_NATS_URL=NATS_URL, ACUVIM_MQTT_URL=MQTT_URL)
    log_path = data_dir / "make-run.log"
    with open(log_path, "wb") as log:
        # Its own process group, as a terminal's foreground job: Ctrl-C reaches make and all.
        proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Running(proc, log_path, f"http://127.0.0.1:{http_port}")
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        conn = await asyncpg.connect(f"{PG_URL}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_make_run_serves_the_api_and_stops_on_ctrl_c(make_run: Running) -> None:
    await eventually(lambda: healthy(make_run), timeout_s=START_TIMEOUT_S, interval_s=0.5,
                     what="GET /api/health 200")
    log = make_run.log()
    for what in ("PostgreSQL", "NATS", "MQTT"):
        assert re.search(rf"using {what} at ", log), what
    assert "started an embedded" not in log
    async with httpx.AsyncClient(base_url=make_run.base_url, timeout=10) as http:
        login = await http.post("/api/auth/login",
                                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        swagger = await http.get("/swagger")
        assert swagger.status_code == 200

    tree = descendants(make_run.proc.pid)
    os.killpg(make_run.proc.pid, signal.SIGINT)
    code = make_run.proc.wait(timeout=STOP_TIMEOUT_S)
    log = make_run.log()
    assert "console stopped" in log, log[-3000:]
    # make itself reports the interrupt (exit 2 or killed by SIGINT); the console exited 0.
    assert code in (0, 2, -signal.SIGINT), log[-3000:]
    assert "Error 1" not in log
    left = {p: command_line(p) for p in tree if alive(p)}
    assert not left, f"left running: {left}"
