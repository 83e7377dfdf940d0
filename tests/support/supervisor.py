"""Start `python -m services.supervisor` (what `make run` runs) as a real process, its output in
a file, and stop it as Ctrl-C would, whatever the test did to it.

    with scratch_dir("acuvim-x-") as folder:
        env = supervisor_env(folder, free_port(), **closed_urls())
        with launched(env, folder / "supervisor.log") as sup:
            await sup.wait_healthy()
            await sup.wait_log("console stopped")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.console import JWT_SECRET, ROOT, free_port
from tests.support.waiting import eventually

SUPERVISOR = (sys.executable, "-m", "services.supervisor")
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
# After a Ctrl-C that did not stop it: SIGTERM (its second signal kills everything at once),
# then SIGKILL.
TERMINATE_TIMEOUT_S = 10


# -- the process tree, from /proc ----------------------------------------------------------------
def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
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


def still_running(pids: set[int]) -> dict[int, str]:
    """The ones of `pids` that still run, with their command lines."""
    return {pid: command_line(pid) for pid in pids if alive(pid)}


# -- its folder and environment ------------------------------------------------------------------
@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temp folder the unprivileged PostgreSQL user can reach (pytest's are root-only),
    removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any ACUVIM_ setting, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACUVIM_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def supervisor_env(data_dir: Path, http_port: int, **urls: str) -> dict[str, str]:
    """A console of its own: folder, port, bus root and topic prefix, first admin."""
    run_id = "sup" + os.urandom(4).hex()
    return clean_env(
        ACUVIM_DATA_DIR=str(data_dir),
        ACUVIM_FIRMWARE_STORAGE=str(data_dir / "firmware"),
        ACUVIM_HTTP_PORT=str(http_port),
        ACUVIM_PUBLIC_BASE_URL=f"http://127.0.0.1:{http_port}",
        ACUVIM_BUS_ROOT=run_id,
        ACUVIM_TOPIC_PREFIX=run_id,
        ACUVIM_JWT_SECRET=JWT_SECRET,
        ACUVIM_ADMIN_EMAIL=ADMIN_EMAIL,
        ACUVIM_ADMIN_PASSWORD=ADMIN_PASSWORD,
        ACUVIM_LOG_FORMAT="json",
        **urls,
    )


def closed_urls() -> dict[str, str]:
    """PostgreSQL, NATS and MQTT URLs where nothing answers: the supervisor embeds all three."""
    return {
        "ACUVIM_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/acuvim",
        "ACUVIM_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "ACUVIM_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
    }


# -- the running supervisor ----------------------------------------------------------------------
@dataclass
class Supervisor:
    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_log(self, text: str, timeout_s: float = 30) -> None:
        async def logged() -> bool:
            return text in self.log()

        await eventually(logged, timeout_s=timeout_s, what=f"{text!r} logged")

    async def healthy(self) -> bool:
        assert self.proc.poll() is None, "supervisor exited:\n" + self.log()[-3000:]
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=3) as http:
                reply = await http.get("/api/health")
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    async def login(self) -> httpx.Response:
        """POST /api/auth/login as the first admin (the one its environment names)."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            return await http.post("/api/auth/login",
                                   json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})

    async def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        await eventually(self.healthy, timeout_s=timeout_s, interval_s=0.5,
                         what="GET /api/health 200")

    def tree(self) -> set[int]:
        """Every process it runs now (services, embedded servers, their children)."""
        return descendants(self.proc.pid)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to its process group, as a terminal sends it to its foreground job."""
        self.signal_group(signal.SIGINT)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Ctrl-C, then SIGTERM after `timeout_s`, then SIGKILL; and SIGKILL to whatever of its
        group and tree is left (its services run in sessions of their own)."""
        tree = self.tree() if self.proc.poll() is None else set()
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, TERMINATE_TIMEOUT_S)):
            if self.proc.poll() is not None:
                break
            self.signal_group(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait_s)
        if self.proc.poll() is None:
            tree |= self.tree()
        self.signal_group(signal.SIGKILL)
        for pid in still_running(tree):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def launched(env: Mapping[str, str], log_path: Path, *, cwd: Path = ROOT,
             command: Sequence[str] = SUPERVISOR) -> Iterator[Supervisor]:
    """`command` (the supervisor, or what runs it: `make run`, a wrapper that execs it) in a
    process group of its own, stdout and stderr to `log_path`; stopped on the way out."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(command), cwd=cwd, env=dict(env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{env.get('ACUVIM_HTTP_PORT', '')}"
    supervisor = Supervisor(proc, log_path, base_url)
    try:
        yield supervisor
    finally:
        supervisor.stop()
