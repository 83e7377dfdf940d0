"""`python -m services.supervisor` with nothing answering at the configured URLs: it starts an
embedded PostgreSQL, NATS and MQTT broker, the six services answer, a crashed service is
restarted, and SIGTERM stops everything (exit 0, no process left behind)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.console import JWT_SECRET, ROOT, free_port
from tests.support.waiting import eventually

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True for a running process (a zombie, already dead, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def world_readable_tmp(prefix: str) -> Path:
    """A temp folder the unprivileged PostgreSQL user can reach (pytest's are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    for pid in descendants(proc.pid) | {proc.pid}:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def supervisor_env(data_dir: Path, http_port: int, **urls: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACUVIM_")}
    run_id = "sup" + os.urandom(4).hex()
    env.update({
        "ACUVIM_DATA_DIR": str(data_dir),
        "ACUVIM_FIRMWARE_STORAGE": str(data_dir / "firmware"),
        "ACUVIM_HTTP_PORT": str(http_port),
        "ACUVIM_PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
        "ACUVIM_BUS_ROOT": run_id,
        "ACUVIM_TOPIC_PREFIX": run_id,
        "ACUVIM_JWT_SECRET": JWT_SECRET,
        "ACUVIM_ADMIN_EMAIL": ADMIN_EMAIL,
        "ACUVIM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "ACUVIM_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
        **urls,
    })
    return env


@pytest.fixture(scope="module")
def fallback() -> Iterator[Running]:
    data_dir = world_readable_tmp("acuvim-fallback-")
    http_port = free_port()
    env = supervisor_env(
        data_dir, http_port,
        ACUVIM_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/acuvim",
        ACUVIM_NATS_URL=f"nats://127.0.0.1:{free_port()}",
        ACUVIM_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
    )
    log_path = data_dir / "supervisor.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "services.supervisor"], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Running(proc, log_path, f"http://127.0.0.1:{http_port}")
    try:
        yield running
    finally:
        if proc.poll() is None:
            kill_tree(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


async def healthy(running: Running) -> bool:
    assert running.proc.poll() is None, "supervisor exited:\n" + running.log()[-3000:]
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=3) as http:
            reply = await http.get("/api/health")
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


async def test_starts_embedded_dependencies_and_answers(fallback: Running) -> None:
    await eventually(lambda: healthy(fallback), timeout_s=START_TIMEOUT_S, interval_s=0.5,
                     what="GET /api/health 200")
    log = fallback.log()
    for what in ("PostgreSQL", "NATS", "MQTT"):
        assert re.search(rf"{what} does not answer at .*: started an embedded", log), what
    async with httpx.AsyncClient(base_url=fallback.base_url, timeout=10) as http:
        reply = await http.post("/api/auth/login",
                                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "bearer"


async def test_a_crashed_service_is_restarted(fallback: Running) -> None:
    await eventually(lambda: healthy(fallback), timeout_s=START_TIMEOUT_S, interval_s=0.5)
    health = [p for p in descendants(fallback.proc.pid)
              if "-m services.health" in command_line(p)]
    assert len(health) == 1
    os.kill(health[0], signal.SIGKILL)

    async def restarted() -> bool:
        return "health exited with code -9; restarting it" in fallback.log()

    await eventually(restarted, timeout_s=10, what="restart logged")

    async def back() -> bool:
        new = [p for p in descendants(fallback.proc.pid)
               if "-m services.health" in command_line(p)]
        return bool(new) and new != health and await healthy(fallback)

    await eventually(back, timeout_s=30, interval_s=0.5, what="health service back")


async def test_a_crashed_embedded_dependency_is_started_again(fallback: Running) -> None:
    await eventually(lambda: healthy(fallback), timeout_s=START_TIMEOUT_S, interval_s=0.5)
    nats = [p for p in descendants(fallback.proc.pid) if "nats-server" in command_line(p)]
    assert len(nats) == 1
    os.kill(nats[0], signal.SIGKILL)

    async def started_again() -> bool:
        return "the embedded nats runs again at" in fallback.log()

    await eventually(started_again, timeout_s=20, what="nats started again")
    # The services reconnect to it, on the same port; JetStream kept its streams on disk.
    await eventually(lambda: healthy(fallback), timeout_s=30, interval_s=0.5)


async def test_sigterm_stops_everything(fallback: Running) -> None:
    await eventually(lambda: healthy(fallback), timeout_s=START_TIMEOUT_S, interval_s=0.5)
    tree = descendants(fallback.proc.pid)
    names = " ".join(command_line(p) for p in tree)
    for program in ("nats-server", "postgres", "services.gateway", "services.ingest"):
        assert program in names, f"{program} not among {names}"
    fallback.proc.send_signal(signal.SIGTERM)
    started_s = time.monotonic()
    assert fallback.proc.wait(timeout=STOP_TIMEOUT_S) == 0, fallback.log()[-3000:]
    assert time.monotonic() - started_s < STOP_TIMEOUT_S
    left = {p: command_line(p) for p in tree if alive(p)}
    assert not left, f"left running: {left}"
    assert "console stopped" in fallback.log()
