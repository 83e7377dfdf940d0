"""Many simulated devices in one process: the links they share, the HTTP client, their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Self

import httpx

from simulator.autopilot import run_device
from simulator.device import LinkFactory, SimulatedDevice
from simulator.profiles import DeviceProfile, FleetConfig, build_profiles
from simulator.transport import Broker, ConnectionPool, DeviceLink, own_connection_factory

log = logging.getLogger("simulator.fleet")

HTTP_TIMEOUT_S = 30.0
HTTP_MAX_CONNECTIONS = 50


class Fleet:
    """`await Fleet(config).run()` runs until `duration_s` (or forever); `async with` starts the
    fleet for a test and stops it cleanly (every device says `offline`) on the way out."""

    def __init__(self, config: FleetConfig, profiles: list[DeviceProfile] | None = None) -> None:
        self.config = config
        self.profiles = profiles if profiles is not None else build_profiles(config)
        self.pool: ConnectionPool | None = None
        self.http: httpx.AsyncClient | None = None
        self.devices: list[SimulatedDevice] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = 0.0

    def device(self, device_id: str) -> SimulatedDevice:
        for device in self.devices:
            if device.device_id == device_id:
                return device
        raise KeyError(device_id)

    async def start(self) -> None:
        broker = Broker(self.config.mqtt_url)
        self.http = httpx.AsyncClient(
            timeout=HTTP_TIMEOUT_S, limits=httpx.Limits(max_connections=HTTP_MAX_CONNECTIONS))
        factory: LinkFactory
        if self.config.connection_mode == "shared":
            self.pool = ConnectionPool(broker, self.config.pool_size)
            await self.pool.start()
            factory = self._pooled_factory(self.pool)
        else:
            factory = own_connection_factory(broker)
        self.devices = [SimulatedDevice(p, self.config, link_factory=factory, http=self.http)
                        for p in self.profiles]
        spread_s = self.config.start_spread_s / max(1, len(self.devices))
        self.started_at = time.monotonic()
        self._tasks = [asyncio.create_task(run_device(d, n * spread_s), name=d.device_id)
                       for n, d in enumerate(self.devices)]
        for task in self._tasks:
            task.add_done_callback(_autopilot_ended)
        log.info("fleet started", extra={"devices": len(self.devices),
                                         "mode": self.config.connection_mode})

    @staticmethod
    def _pooled_factory(pool: ConnectionPool) -> LinkFactory:
        def make(device: SimulatedDevice) -> DeviceLink:
            return pool.link(device.profile.index, device.topic("cmd"), device.on_command)

        return make

    async def stop(self) -> None:
        for device in self.devices:
            device.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(d.shutdown() for d in self.devices), return_exceptions=True)
        if self.pool is not None:
            await self.pool.stop()
        if self.http is not None:
            await self.http.aclose()
        log.info("fleet stopped", extra=self.totals())

    async def run(self) -> None:
        """Start, live `duration_s` (forever when None), stop; also stops when cancelled."""
        await self.start()
        try:
            if self.config.duration_s is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(self.config.duration_s)
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.stop())

    def totals(self) -> dict[str, int]:
        """Messages sent by the whole fleet, by kind (for benchmarks and the final log line)."""
        out: dict[str, int] = {"online": sum(d.state == "online" for d in self.devices)}
        for device in self.devices:
            for kind, count in device.sent.items():
                out[kind] = out.get(kind, 0) + count
        return out

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _autopilot_ended(task: asyncio.Task[None]) -> None:
    """A device whose autopilot failed falls silent for good: say why, or it looks like a hang."""
    if not task.cancelled() and task.exception() is not None:
        log.error("autopilot failed", exc_info=task.exception(),
                  extra={"device_id": task.get_name()})
