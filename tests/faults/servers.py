"""NATS, Mosquitto and PostgreSQL of the fault tests' own, on free ports, which they may kill,
pause and restart without disturbing the machine's shared servers (other sessions use those).

Each keeps its data in its own folder across restarts: NATS its JetStream store (`-sd`),
Mosquitto its persistence file, PostgreSQL its cluster. PostgreSQL refuses to run as root, so
as root it runs as the `postgres` account (or `nobody`) through setpriv.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from services.supervisor import probe
from tests.support.console import free_port
from tests.support.supervisor import descendants

NATS_BINARY = Path("/usr/sbin/nats-server")
MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
READY_TIMEOUT_S = 30.0


def postgres_bin_dir() -> Path:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "postgres").is_file():
            return folder
    raise FileNotFoundError("no PostgreSQL binaries under /usr/lib/postgresql")


def available() -> str | None:
    """Why the fault servers cannot run here (None when they can)."""
    for binary in (NATS_BINARY, MOSQUITTO_BINARY):
        if not binary.is_file():
            return f"{binary} is missing"
    try:
        postgres_bin_dir()
    except FileNotFoundError as exc:
        return str(exc)
    return None


def _account(*names: str) -> pwd.struct_passwd | None:
    """An unprivileged account to run as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in names:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(f"running as root and none of {names} exists")


def _owned_dir(folder: Path, account: pwd.struct_passwd | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    folder.chmod(0o700)
    return folder


@dataclass
class Server:
    """One server process that can be killed, paused and started again on the same port."""

    name: str
    argv: list[str]
    url: str
    ready: Callable[[str], Awaitable[bool]]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    async def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "LC_ALL": "C", "LANG": "C"})
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await self.ready(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            await asyncio.sleep(0.1)

    async def stop(self, sig: int | None = None, timeout_s: float = 30) -> int:
        """Stop it (its own graceful signal unless told otherwise); the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(self.stop_signal if sig is None else sig)
        try:
            return await asyncio.to_thread(proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return await asyncio.to_thread(proc.wait)

    async def restart(self, sig: int | None = None) -> None:
        await self.stop(sig)
        await self.start()

    def pause(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung or unreachable server)."""
        assert self.proc is not None
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, sig: int) -> None:
        # PostgreSQL's backends are children of the postmaster: pause all of them.
        assert self.proc is not None
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue


def nats_server(folder: Path) -> Server:
    port = free_port()
    store = _owned_dir(folder / "nats", None)
    return Server("nats", [str(NATS_BINARY), "-js", "-sd", str(store), "-a", "127.0.0.1",
                           "-p", str(port)],
                  f"nats://127.0.0.1:{port}", probe.nats_answers, folder / "nats.log")


def mosquitto_server(folder: Path) -> Server:
    port = free_port()
    account = _account("mosquitto", "nobody")
    data = _owned_dir(folder / "mosquitto", account)
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
             f"persistence_location {data}/", "log_dest stderr", "log_type error",
             "log_type warning",
             # The ingest session must queue whatever arrives while ingest is down.
             "max_queued_messages 0", "max_inflight_messages 100"]
    if account is not None:
        lines.append(f"user {account.pw_name}")
    config = folder / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return Server("mosquitto", [str(MOSQUITTO_BINARY), "-c", str(config)],
                  f"mqtt://127.0.0.1:{port}", probe.mqtt_answers, folder / "mosquitto.log")


def postgres_server(folder: Path) -> Server:
    """initdb once (trust, user postgres), then a postmaster on a free TCP port only."""
    bin_dir = postgres_bin_dir()
    port = free_port()
    account = _account("postgres", "nobody")
    cluster = _owned_dir(folder / "pg", account)
    prefix: list[str] = []
    if account is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running PostgreSQL as root needs setpriv"
        prefix = [setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
                  "--clear-groups", "--"]
    if not (cluster / "PG_VERSION").exists():
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(cluster), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-locale"], check=True,
                       capture_output=True, cwd=cluster, env={**os.environ, "LC_ALL": "C"})
    argv = [*prefix, str(bin_dir / "postgres"), "-D", str(cluster), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=300", "-c", "fsync=off", "-c", "full_page_writes=off"]
    # setpriv exec()s postgres: signals to the child reach the postmaster itself.
    return Server("postgres", argv, f"postgresql://postgres@127.0.0.1:{port}",
                  _postgres_accepts, folder / "postgres.log", stop_signal=signal.SIGINT)


async def _postgres_accepts(url: str) -> bool:
    """A real connection: the postmaster answers the probe before it accepts sessions."""
    try:
        conn = await asyncpg.connect(f"{url}/postgres", timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


def base_folder() -> Path:
    """A folder the unprivileged accounts can reach (pytest's tmp folders are root-only)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="acuvim-faults-", dir="/tmp"))
    folder.chmod(0o755)
    return folder
