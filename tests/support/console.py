"""Start the console's services as real processes against this machine's PostgreSQL, NATS and
Mosquitto, each test session in its own database, bus root and topic prefix.

    console = Console.for_session()       # names unique to this run
    console.start("gateway", "health")    # real processes: python -m services.<name>
    console.kill("health"); console.start("health")   # faults
    console.stop_all(); console.drop_database()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from services.gateway.auth.tokens import issue_access_token

ROOT = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("ACUVIM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")
NATS_URL = os.environ.get("ACUVIM_TEST_NATS_URL", "nats://127.0.0.1:4222")
MQTT_URL = os.environ.get("ACUVIM_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
JWT_SECRET = "test-secret-" + "x" * 40
ALL_SERVICES = ("ingest", "telemetry", "health", "commands", "firmware", "notify", "gateway")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Console:
    run_id: str
    http_port: int
    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    # The servers it runs against (fault tests point them at servers of their own).
    pg_url: str = PG_URL
    nats_url: str = NATS_URL
    mqtt_url: str = MQTT_URL
    processes: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    @classmethod
    def for_session(cls, tmp: Path, **extra_env: str) -> Console:
        run_id = "t" + uuid.uuid4().hex[:10]
        data_dir = tmp / run_id
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_id=run_id, http_port=free_port(), data_dir=data_dir,
                   extra_env=dict(extra_env))

    # -- names ---------------------------------------------------------------------------------
    @property
    def database(self) -> str:
        return f"acuvim_{self.run_id}"

    @property
    def database_url(self) -> str:
        return f"{self.pg_url}/{self.database}"

    @property
    def bus_root(self) -> str:
        return self.run_id

    @property
    def topic_prefix(self) -> str:
        return self.run_id

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ACUVIM_")}
        env.update({
            "ACUVIM_DATABASE_URL": self.database_url,
            "ACUVIM_NATS_URL": self.nats_url,
            "ACUVIM_MQTT_URL": self.mqtt_url,
            "ACUVIM_TOPIC_PREFIX": self.topic_prefix,
            "ACUVIM_BUS_ROOT": self.bus_root,
            "ACUVIM_HTTP_PORT": str(self.http_port),
            "ACUVIM_PUBLIC_BASE_URL": self.base_url,
            "ACUVIM_JWT_SECRET": JWT_SECRET,
            "ACUVIM_DATA_DIR": str(self.data_dir),
            "ACUVIM_FIRMWARE_STORAGE": str(self.data_dir / "firmware"),
            "ACUVIM_LOG_FORMAT": "json",
            "ACUVIM_ADMIN_EMAIL": "admin@example.com",
            "ACUVIM_ADMIN_PASSWORD": "admin-password-1",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        env.update(overrides)
        return env

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, tmp: Path, services: tuple[str, ...] = ALL_SERVICES,
                      timeout_s: float = 60, **extra_env: str) -> AsyncIterator[Console]:
        """A console of these services, healthy, removed afterwards (processes, streams,
        database)."""
        console = cls.for_session(tmp, **extra_env)
        console.start(*services)
        try:
            await console.wait_healthy(services=services, timeout_s=timeout_s)
            yield console
        finally:
            await console.close()

    async def close(self) -> None:
        self.stop_all()
        await self.delete_streams()
        await self.drop_database()

    async def wait_log(self, service: str, text: str, count: int = 1,
                       timeout_s: float = 30) -> None:
        """Wait until `service` logged `text` at least `count` times."""
        deadline = time.monotonic() + timeout_s
        while self.log(service).count(text) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service} did not log {text!r} {count}x in {timeout_s}s")
            await asyncio.sleep(0.1)

    # -- processes -----------------------------------------------------------------------------
    def start(self, *services: str, **env_overrides: str) -> None:
        for name in services:
            log = open(self.data_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"], cwd=ROOT,
                env=self.env(**env_overrides), stdout=log, stderr=subprocess.STDOUT,
            )
            self.processes.setdefault(name, []).append(proc)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 20) -> list[int]:
        codes = []
        for proc in self.processes.pop(name, []):
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                codes.append(proc.wait(timeout=timeout_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes

    def kill(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.data_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def wait_healthy(self, services: tuple[str, ...] = ALL_SERVICES,
                           timeout_s: float = 30) -> None:
        """Wait until the gateway answers and the given services answer its health check."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=3) as client:
            while time.monotonic() < deadline:
                for name, procs in self.processes.items():
                    dead = [p for p in procs if p.poll() is not None]
                    if dead:
                        raise RuntimeError(f"{name} exited {dead[0].returncode}:\n"
                                           + self.log(name)[-3000:])
                try:
                    reply = await client.get("/api/health")
                    last = reply.json()
                    states = last.get("services", {})
                    if all(states.get(s) == "ok" for s in services if s != "gateway"):
                        return
                except httpx.HTTPError as exc:
                    last = exc
                await asyncio.sleep(0.2)
        raise TimeoutError(f"console not healthy after {timeout_s}s: {last}")

    # -- access --------------------------------------------------------------------------------
    def token(self, role: str = "admin", email: str | None = None, ttl_s: int = 3600) -> str:
        """A signed access token for a user of this role (the tests share the JWT secret)."""
        token, _ = issue_access_token(JWT_SECRET, user_id=str(uuid.uuid4()),
                                      email=email or f"{role}@example.com", role=role,
                                      ttl_s=ttl_s)
        return token

    def client(self, role: str | None = "admin", **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(role)}"} if role else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                 timeout=kwargs.pop("timeout", 15), **kwargs)

    async def drop_database(self) -> None:
        conn = await asyncpg.connect(f"{self.pg_url}/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await conn.close()

    async def delete_streams(self) -> None:
        import nats

        from libs.common.subjects import Subjects

        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            s = Subjects(self.bus_root)
            for stream in (s.device_in_stream, s.device_out_stream, s.events_stream,
                           s.dead_stream):
                with contextlib.suppress(Exception):  # already gone
                    await js.delete_stream(stream)
        finally:
            await nc.close()
