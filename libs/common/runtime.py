"""What every service process wires the same way: bus, streams, database, RPC, consumers, loops.

A service's `app.py` builds a Runtime, registers its handlers and runs it:

    async def main(settings, stopping):
        async with Runtime.open("health", settings, stopping, migrations=MIGRATIONS) as rt:
            handlers.register(rt, HealthService(Repo(rt.pool), rt.publisher))
            await rt.serve()

Shutdown order: stop taking work (consumers, loops, RPC), let in-flight work finish, then drain
the NATS connection and close the pool, so nothing is acknowledged that was not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from libs.common import bus, db
from libs.common.lifecycle import retry_until_ready
from libs.common.rpc import RpcClient, RpcServer
from libs.common.settings import Settings
from libs.common.subjects import Subjects

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    name: str
    settings: Settings
    stopping: asyncio.Event
    subjects: Subjects
    nc: NATS
    js: JetStreamContext
    rpc: RpcServer
    rpc_client: RpcClient
    pool: asyncpg.Pool | None = None
    _consumers: list[bus.DurableConsumer] = field(default_factory=list)
    _loops: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = field(default_factory=list)
    _workers: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]]]] = field(
        default_factory=list)

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, f"{self.name} was opened without a database"
        return self.pool

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, name: str, settings: Settings, stopping: asyncio.Event, *,
                   migrations: Path | None = None, pool_size: int = 10,
                   ) -> AsyncIterator[Runtime]:
        subjects = Subjects(settings.bus_root)
        nc = await retry_until_ready(
            "NATS", lambda: bus.connect(settings.nats_url, f"acuvim-{name}"), stopping)
        js = nc.jetstream()
        await retry_until_ready("JetStream", lambda: bus.declare_streams(
            js, subjects, settings.jetstream_replicas,
            device_max_age_s=settings.device_in_max_age_s,
            device_max_bytes=settings.device_in_max_bytes), stopping)
        pool = None
        if migrations is not None:
            pool = await retry_until_ready(
                "PostgreSQL", lambda: db.create_pool(settings.database_url, name,
                                                     max_size=pool_size), stopping)
            await db.migrate(pool, name, migrations)
        rt = cls(name=name, settings=settings, stopping=stopping, subjects=subjects, nc=nc, js=js,
                 rpc=RpcServer(nc, subjects, name),
                 rpc_client=RpcClient(nc, subjects, settings.rpc_timeout_s), pool=pool)
        if pool is not None:
            rt.rpc.add_health_check(lambda: db.ping(pool))
        try:
            yield rt
        finally:
            await rt._close()

    def consume(self, *, stream: str, durable: str, filter_subjects: Sequence[str],
                handler: bus.BatchHandler, batch_size: int = 100, deliver_new: bool = False,
                fetch_timeout_s: float = 1.0, ack_wait_s: float = bus.ACK_WAIT_S) -> None:
        """Register a durable JetStream consumer, run by `serve` (shared by all replicas).
        `ack_wait_s`: how soon the messages of a replica that died are delivered again."""
        self._consumers.append(bus.DurableConsumer(
            self.js, stream=stream, durable=durable, filter_subjects=filter_subjects,
            handler=handler, batch_size=batch_size, deliver_new=deliver_new,
            fetch_timeout_s=fetch_timeout_s, ack_wait_s=ack_wait_s))

    def every(self, name: str, period_s: float, job: Callable[[], Awaitable[Any]]) -> None:
        """Register a periodic job (a sweep); a failing run is logged and the next one runs."""
        self._loops.append((name, period_s, job))

    def worker(self, name: str, run: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Register a long-running task (e.g. an MQTT connection) that watches `stopping` itself;
        if it ends before `stopping` is set, the service stops with an error (to be restarted)."""
        self._workers.append((name, run))

    async def serve(self) -> None:
        """Run RPC, consumers and loops until `stopping` is set."""
        await self.rpc.start()
        tasks = [asyncio.create_task(c.run(), name=c.durable) for c in self._consumers]
        tasks += [asyncio.create_task(self._loop(*loop), name=loop[0]) for loop in self._loops]
        tasks += [asyncio.create_task(run(), name=name) for name, run in self._workers]
        log.info("%s ready", self.name)
        stop = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stop and task.exception() is not None:
                log.error("%s stopped unexpectedly: %r", task.get_name(), task.exception())
        for consumer in self._consumers:
            consumer.stop()
        await self.rpc.stop()
        # Consumers finish the batch in hand (fetch returns within its timeout).
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        stop.cancel()
        if not self.stopping.is_set():
            raise RuntimeError(f"{self.name}: a worker stopped unexpectedly")

    async def _loop(self, name: str, period_s: float,
                    job: Callable[[], Awaitable[Any]]) -> None:
        while not self.stopping.is_set():
            try:
                await job()
            except Exception as exc:
                log.warning("%s failed: %r", name, exc)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=period_s)
            except TimeoutError:
                continue

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.drain()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pool.close(), timeout=10)
