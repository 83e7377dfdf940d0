"""One simulated ESP32 gateway: boot, registration, status, heartbeats, telemetry, alerts, SD.

States: `off` (booting, nothing measured), `online` (live telemetry), `offline` (no link:
readings go to the SD card, replayed in batches when the link is back). Commands are answered in
`simulator.commands`; `run()` is the autopilot (timers, flaky link, reconnects); tests drive the
same device by hand with `boot()`, `publish_telemetry()`, `go_offline()`, `come_back()`...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import httpx

from libs.common.codec import encode
from simulator.alerts import AlertWatcher
from simulator.devconfig import default_config
from simulator.profiles import DeviceProfile, FleetConfig
from simulator.readings import MeterEvents, MeterSimulator
from simulator.transport import Broker, DeviceLink, LinkDown, own_connection_factory

log = logging.getLogger("simulator.device")

REGISTER_TOPIC = "devices/register"
RECONNECT_DELAY_S = (0.5, 5.0)    # a firmware retries its broker within this window
PENDING_ALERTS_MAX = 50           # alerts kept in RAM while offline (not on the card)
HEAP_RANGE_BYTES = (60_000, 190_000)
DeviceState = Literal["off", "online", "offline"]
LinkFactory = Callable[["SimulatedDevice"], DeviceLink]


class SimulatedDevice:
    def __init__(self, profile: DeviceProfile, fleet: FleetConfig | None = None, *,
                 link_factory: LinkFactory | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.profile = profile
        self.fleet = fleet or FleetConfig(devices=1)
        self.device_id = profile.device_id
        self.rng = random.Random(f"device:{profile.seed}:{profile.index}")
        events = MeterEvents(modbus_loss_chance=0.15 if profile.modbus_loss else 0.0)
        self.meter = MeterSimulator(self.rng, has_pv=profile.has_pv, events=events)
        self.config = default_config(profile, self.fleet.telemetry_interval_s,
                                     self.fleet.heartbeat_interval_s)
        self.firmware_version = profile.firmware_version
        self.boot_count = self.rng.randint(0, 40)
        self.reset_reason = "power_on"
        self.state: DeviceState = "off"
        self.sd: deque[dict[str, Any]] = deque(maxlen=self.fleet.sd_capacity)
        self.alerts = AlertWatcher()
        self.pending_alerts: deque[bytes] = deque(maxlen=PENDING_ALERTS_MAX)
        self.modbus_errors = 0
        self.free_heap = self.min_free_heap = 150_000
        self.ip_address = ""
        self.clock_synced = True
        self.sent: dict[str, int] = dict.fromkeys(
            ("telemetry", "heartbeat", "replayed", "alerts", "answers", "buffered"), 0)
        self.ota_busy = False
        self.http = http
        self._own_http = False
        self._booted_at = time.monotonic()
        self._ntp_at = 0.0
        self._last_live: dict[str, Any] | None = None
        self._registered = False
        self._link_factory = link_factory or own_connection_factory(Broker(self.fleet.mqtt_url))
        self._link: DeviceLink | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()  # abandoned links being broken off
        self.next_telemetry_at = self.next_heartbeat_at = 0.0
        self.next_link_event_at = math.inf

    # -- topics and small facts ----------------------------------------------------------------
    def topic(self, kind: str) -> str:
        return f"{self.fleet.topic_prefix}/{self.device_id}/{kind}"

    @property
    def uptime_s(self) -> int:
        return int(time.monotonic() - self._booted_at)

    @property
    def heartbeat_interval_s(self) -> float:
        return float(self.config["heartbeat_interval_s"])

    @property
    def telemetry_interval_s(self) -> float:
        return float(self.config["telemetry_interval_s"])

    def device_ts(self) -> float:
        """The device's clock: 0 until NTP (or `sync_time`) gave it the time."""
        if not self.clock_synced and time.monotonic() >= self._ntp_at:
            self.clock_synced = True
        return round(time.time(), 3) if self.clock_synced else 0

    def registration(self) -> dict[str, Any]:
        p = self.profile
        body: dict[str, Any] = {
            "device_id": self.device_id, "mac_address": p.mac_address,
            "hardware": p.hardware, "firmware_version": self.firmware_version,
            "capabilities": list(p.capabilities),
            "heartbeat_interval": int(self.heartbeat_interval_s),
            "meter": {"model": p.meter_model, "serial": p.meter_serial,
                      "modbus_address": self.config["modbus"]["address"]},
        }
        if p.imei:
            body.update(imei=p.imei, iccid=p.iccid)
        return body

    def heartbeat(self) -> dict[str, Any]:
        self._drift_heap()
        return {
            "ts": self.device_ts(), "uptime_s": self.uptime_s,
            "firmware_version": self.firmware_version, "connection_type": self.profile.radio,
            "signal_strength": self.profile.signal_dbm + self.rng.randint(-3, 3),
            "ip_address": self.ip_address, "boot_count": self.boot_count,
            "free_heap": self.free_heap, "min_free_heap": self.min_free_heap,
            "reset_reason": self.reset_reason, "modbus_ok": self.meter.modbus_ok,
            "modbus_errors": self.modbus_errors, "sd_buffered": len(self.sd),
            "heartbeat_interval": int(self.heartbeat_interval_s),
        }

    def _drift_heap(self) -> None:
        low, high = HEAP_RANGE_BYTES
        self.free_heap = min(high, max(low, self.free_heap + int(self.rng.gauss(-50, 1500))))
        self.min_free_heap = min(self.min_free_heap, self.free_heap)

    # -- lifecycle -----------------------------------------------------------------------------
    async def boot(self, reset_reason: str = "power_on") -> bool:
        """Power on: a new boot count, maybe no NTP time yet, connect, register, say online."""
        async with self._lock:
            self.boot_count += 1
            self.reset_reason = reset_reason
            self._booted_at = time.monotonic()
            self.clock_synced = self.rng.random() >= self.fleet.unsynced_boot_chance
            self._ntp_at = self._booted_at + self.fleet.ntp_sync_after_s
            self.free_heap = self.min_free_heap = self.rng.randint(140_000, 175_000)
            self.ip_address = self._new_ip()
            self.state = "offline"
            self._registered = False
            connected = await self._connect()
        self._wake.set()  # the autopilot, idle while the device was off, resumes its timers
        return connected

    def _new_ip(self) -> str:
        r = self.rng
        if self.profile.radio == "gsm":
            return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(2, 254)}"
        return f"192.168.{r.randint(0, 20)}.{r.randint(2, 254)}"

    async def _connect(self) -> bool:
        if self._retiring:  # an old connection must be gone before a new one takes its client id
            await asyncio.wait(self._retiring)
        link = self._link_factory(self)
        try:
            await link.open()
            self._link = link
            self.state = "online"  # before the broker passes `online` on: a test may act on it
            await link.publish(self.topic("status"), b"online", qos=1, retain=True)
            if not self._registered:  # once per boot, on the first connection that works
                await link.publish(REGISTER_TOPIC, encode(self.registration()), qos=1)
                self._registered = True
        except LinkDown as exc:
            log.debug("connect failed", extra={"device_id": self.device_id, "error": str(exc)})
            self.state = "offline"
            await self._discard_link()
            self._schedule_reconnect()
            return False
        self._spawn(self._after_reconnect())
        return True

    async def _after_reconnect(self) -> None:
        while self.pending_alerts and self.state == "online":
            if not await self._send(self.topic("alerts"), self.pending_alerts[0], qos=1):
                return
            self.pending_alerts.popleft()
        await self.replay_sd()

    async def _discard_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _schedule_reconnect(self) -> None:
        self.next_link_event_at = time.monotonic() + self.rng.uniform(*RECONNECT_DELAY_S)
        self._wake.set()

    def on_link_lost(self, link: DeviceLink) -> None:
        """`link` died (said by the link, or by a failed publish). Only the current link counts:
        a publish in flight on a link that a reboot dropped fails when a new one is up."""
        if link is not self._link:
            return
        log.info("link lost", extra={"device_id": self.device_id, "state": self.state})
        self._link = None
        # Broken off for good (a timed-out publish leaves it connected): else the reconnect,
        # same client id, takes its session over and that is reported as the new link's loss.
        task = self._spawn(link.drop())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        if self.state == "online":
            self._went_offline()
            self._schedule_reconnect()

    def _went_offline(self) -> None:
        self.state = "offline"
        # The firmware also writes the last live reading to the card: a replay repeats it.
        if self._last_live is not None:
            self.sd.append(self._last_live)

    async def go_offline(self) -> None:
        """Lose the link (the broker publishes the will) and stay offline until `come_back()`."""
        async with self._lock:
            if self.state != "online":
                return
            self._went_offline()
            await self._drop_link()
            self.next_link_event_at = math.inf

    async def _drop_link(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        if not link.has_will:  # a shared connection has no will: say it ourselves
            with contextlib.suppress(LinkDown):
                await link.publish(self.topic("status"), b"offline", qos=1, retain=True)
        await link.drop()

    async def come_back(self) -> bool:
        """The link is back: online again, then the SD card is replayed (in the background)."""
        async with self._lock:
            if self.state != "offline":
                return self.state == "online"
            return await self._connect()

    async def reboot(self, reset_reason: str = "software",
                     firmware_version: str | None = None) -> None:
        """Restart: the link dies (will), the device is away `boot_time_s`, then boots again."""
        async with self._lock:
            self.state = "off"
            await self._drop_link()
        await asyncio.sleep(self.fleet.boot_time_s)
        if firmware_version is not None:
            self.firmware_version = firmware_version
        await self.boot(reset_reason)

    async def shutdown(self) -> None:
        """Stop the device: `offline` said explicitly, a clean disconnect, tasks ended."""
        self.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        async with self._lock:
            link, self._link = self._link, None
            self.state = "off"
            if link is not None:
                with contextlib.suppress(LinkDown):
                    await link.publish(self.topic("status"), b"offline", qos=1, retain=True)
                await link.close()
        if self._own_http and self.http is not None:
            await self.http.aclose()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- what the device sends -----------------------------------------------------------------
    async def _send(self, topic: str, body: bytes, qos: int) -> bool:
        """Publish if online; a dead link turns the device offline (False)."""
        link = self._link
        if self.state != "online" or link is None:
            return False
        try:
            await link.publish(topic, body, qos=qos)
            return True
        except LinkDown:
            self.on_link_lost(link)
            return False

    async def publish_telemetry(self) -> dict[str, Any] | None:
        """Read the meter; send it live, or keep it on the SD card when offline."""
        if self.state == "off":
            return None
        ts = self.device_ts()
        data = self.meter.read()
        if not self.meter.modbus_ok:
            self.modbus_errors += 1
        record = {"ts": ts, "data": data}
        body = encode({"ts": ts, "source": "live", "connection": self.profile.radio,
                       "data": data})
        if await self._send(self.topic("telemetry"), body, qos=1):
            self.sent["telemetry"] += 1
            self._last_live = record
        else:
            self.sd.append(record)
            self.sent["buffered"] += 1
        await self._publish_alerts(data, ts)
        return record

    async def _publish_alerts(self, data: dict[str, Any], ts: float) -> None:
        thresholds = self.config["thresholds"]
        address = int(self.config["modbus"]["address"])
        for alert in self.alerts.check(data, thresholds, address, ts):
            body = encode(alert)
            if await self._send(self.topic("alerts"), body, qos=1):
                self.sent["alerts"] += 1
            else:
                self.pending_alerts.append(body)

    async def publish_heartbeat(self) -> dict[str, Any] | None:
        if self.state != "online":
            return None
        body = self.heartbeat()
        if await self._send(self.topic("heartbeat"), encode(body), qos=0):
            self.sent["heartbeat"] += 1
            return body
        return None

    async def replay_sd(self) -> int:
        """Send the card's records in batches of up to `sd_replay_batch`; answer how many."""
        replayed = 0
        size = max(1, self.fleet.sd_replay_batch)
        while self.sd and self.state == "online":
            batch = [self.sd[n] for n in range(min(size, len(self.sd)))]
            body = encode({"source": "sd", "connection": self.profile.radio, "records": batch})
            if not await self._send(self.topic("telemetry"), body, qos=1):
                break
            if self.rng.random() < self.fleet.duplicate_batch_chance:
                await self._send(self.topic("telemetry"), body, qos=1)  # QoS 1 redelivery
            for _ in batch:
                self.sd.popleft()
            replayed += len(batch)
        self.sent["replayed"] += replayed
        return replayed

    async def answer(self, request_id: str, status: str, *, data: Any = None,
                     error: str | None = None, progress: int | None = None) -> None:
        body: dict[str, Any] = {"request_id": request_id, "status": status}
        if data is not None:
            body["data"] = data
        if error is not None:
            body["error"] = error
        if progress is not None:
            body["progress"] = progress
        if await self._send(self.topic("resp"), encode(body), qos=1):
            self.sent["answers"] += 1

    # -- commands ------------------------------------------------------------------------------
    def on_command(self, payload: bytes) -> None:
        from simulator.commands import handle_command  # commands import the device module

        self._spawn(handle_command(self, payload))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("device task failed", exc_info=task.exception(),
                      extra={"device_id": self.device_id})

    def http_client(self) -> httpx.AsyncClient:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=30.0)
            self._own_http = True
        return self.http

    def config_changed(self) -> None:
        now = time.monotonic()
        self.next_telemetry_at = min(self.next_telemetry_at, now + self.telemetry_interval_s)
        self.next_heartbeat_at = min(self.next_heartbeat_at, now + self.heartbeat_interval_s)
        self._wake.set()

    async def wait(self, delay_s: float) -> None:
        """Sleep up to `delay_s`, less when woken (a lost link, a new config, stop)."""
        if delay_s > 0 and not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._wake.wait()
        else:
            await asyncio.sleep(0)  # always yield: a loop over due work never starves the rest
        self._wake.clear()

    @property
    def stopping(self) -> bool:
        return self._stopping

