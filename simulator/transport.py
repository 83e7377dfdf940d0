"""MQTT links of simulated devices: one connection per device, or a small shared pool.

Per device (`OwnConnection`): the device's own client id and last will (`offline`, retained), as
the firmware has; `drop()` breaks the TCP connection without DISCONNECT so the broker publishes
the will, as when a GSM link dies. Shared (`ConnectionPool`): a few connections carry many
devices (benchmarks); there is no per-device will, so a device says `offline` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiomqtt

log = logging.getLogger("simulator.mqtt")

CommandCallback = Callable[[bytes], None]
PUBLISH_TIMEOUT_S = 10.0  # a QoS 1 publish whose PUBACK never comes means the link is gone
KEEPALIVE_S = 60
RECONNECT_DELAY_S = 1.0
PENDING_CALLS_WARNING = 5_000


class LinkDown(Exception):
    """The device has no MQTT connection right now."""


class Broker:
    """Where the broker is, parsed once from `mqtt://host:port`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    def client(self, identifier: str, will: aiomqtt.Will | None = None) -> aiomqtt.Client:
        client = aiomqtt.Client(hostname=self.host, port=self.port, identifier=identifier,
                                will=will, keepalive=KEEPALIVE_S, timeout=PUBLISH_TIMEOUT_S)
        # A shared connection carries hundreds of devices' publishes at once: that is the plan,
        # not something to warn about.
        client.pending_calls_threshold = PENDING_CALLS_WARNING
        return client


class DeviceLink(Protocol):
    """What a device needs from MQTT."""

    has_will: bool

    @property
    def connected(self) -> bool: ...

    async def open(self) -> None: ...

    async def drop(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        ...


class LinkOwner(Protocol):
    """The device side of an own connection."""

    device_id: str

    def topic(self, kind: str) -> str: ...

    def on_command(self, payload: bytes) -> None: ...

    def on_link_lost(self, link: DeviceLink) -> None: ...


def own_connection_factory(broker: Broker) -> Callable[[LinkOwner], DeviceLink]:
    """Links with one MQTT connection per device and its last will `offline` (retained)."""
    def make(device: LinkOwner) -> DeviceLink:
        will = aiomqtt.Will(device.topic("status"), b"offline", qos=1, retain=True)
        # The link names itself when it dies: the device ignores the end of a link it replaced.
        link = OwnConnection(broker, device.device_id, device.topic("cmd"), will,
                             device.on_command, lambda: device.on_link_lost(link))
        return link

    return make


class OwnConnection:
    """One MQTT connection for one device, with its last will."""

    has_will = True

    def __init__(self, broker: Broker, device_id: str, cmd_topic: str, will: aiomqtt.Will,
                 on_command: CommandCallback, on_lost: Callable[[], None]) -> None:
        self.broker, self.device_id, self.cmd_topic, self.will = broker, device_id, cmd_topic, will
        self.on_command, self.on_lost = on_command, on_lost
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._ended = asyncio.Event()  # this connection is over: its publishes stop waiting

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def open(self) -> None:
        client = self.broker.client(self.device_id, self.will)
        try:
            await client.__aenter__()
            await client.subscribe(self.cmd_topic, qos=1)
        except aiomqtt.MqttError as exc:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
            raise LinkDown(str(exc)) from exc
        self._closing = False
        self._client = client
        self._reader = asyncio.create_task(self._read(client), name=f"mqtt-{self.device_id}")

    async def _read(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                self.on_command(_payload_bytes(message.payload))
        except aiomqtt.MqttError as exc:
            log.info("connection ended", extra={"device_id": self.device_id, "error": repr(exc),
                                                "cause": repr(exc.__cause__)})
        self._ended.set()
        await _settle(client)
        if not self._closing and self._client is client:
            self._client = None
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
            self.on_lost()

    async def drop(self) -> None:
        """Break the TCP connection without DISCONNECT: the broker publishes the will."""
        client, self._client = self._client, None
        self._ended.set()
        if client is None:
            return
        self._closing = True
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        await _settle(client)
        await self._stop_reader()
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    async def close(self) -> None:
        """A clean DISCONNECT (the broker discards the will)."""
        client, self._client = self._client, None
        self._ended.set()
        if client is None:
            return
        self._closing = True
        await self._stop_reader()
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        client = self._client
        if client is None:
            raise LinkDown(self.device_id)
        await _publish_while(self._ended, client.publish(
            topic, payload, qos=qos, retain=retain, timeout=PUBLISH_TIMEOUT_S))


class PooledConnection:
    """One shared MQTT connection: many devices' cmd subscriptions, reconnects on its own."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker, self.name = broker, name
        self.routes: dict[str, CommandCallback] = {}
        self.client: aiomqtt.Client | None = None
        self.ended = asyncio.Event()  # the session of `client` is over (a new one, a new event)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)
        await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with self.broker.client(f"{self.name}-{uuid.uuid4().hex[:6]}") as client:
                    if self.routes:
                        await client.subscribe([(topic, 1) for topic in self.routes])
                    self.client, self.ended = client, asyncio.Event()
                    self._ready.set()
                    async for message in client.messages:
                        route = self.routes.get(str(message.topic))
                        if route is not None:
                            route(_payload_bytes(message.payload))
            except aiomqtt.MqttError as exc:
                log.warning("shared connection lost, reconnecting",
                            extra={"connection": self.name, "error": str(exc)})
            self.client = None
            self.ended.set()
            self._ready.set()  # let start() return even when the broker is not there yet
            await asyncio.sleep(RECONNECT_DELAY_S)


class ConnectionPool:
    """A few connections shared by many devices; a device's link is its slot in the pool."""

    def __init__(self, broker: Broker, size: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.connections = [PooledConnection(broker, f"sim-pool-{tag}-{n}")
                            for n in range(max(1, size))]

    async def start(self) -> None:
        await asyncio.gather(*(c.start() for c in self.connections))

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.connections))

    def link(self, index: int, cmd_topic: str, on_command: CommandCallback) -> PooledLink:
        return PooledLink(self.connections[index % len(self.connections)], cmd_topic, on_command)


class PooledLink:
    """A device's view of its shared connection: subscribed while the device is 'online'."""

    has_will = False

    def __init__(self, connection: PooledConnection, cmd_topic: str,
                 on_command: CommandCallback) -> None:
        self.connection, self.cmd_topic, self.on_command = connection, cmd_topic, on_command
        self._open = False

    @property
    def connected(self) -> bool:
        return self._open and self.connection.client is not None

    async def open(self) -> None:
        client = self.connection.client
        if client is None:
            raise LinkDown(self.connection.name)
        self.connection.routes[self.cmd_topic] = self.on_command
        try:
            await client.subscribe(self.cmd_topic, qos=1)
        except aiomqtt.MqttError as exc:
            raise LinkDown(str(exc)) from exc
        self._open = True

    async def drop(self) -> None:
        await self.close()

    async def close(self) -> None:
        self._open = False
        self.connection.routes.pop(self.cmd_topic, None)
        client = self.connection.client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(self.cmd_topic)

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> None:
        client = self.connection.client
        if not self._open or client is None:
            raise LinkDown(self.cmd_topic)
        await _publish_while(self.connection.ended, client.publish(
            topic, payload, qos=qos, retain=retain, timeout=PUBLISH_TIMEOUT_S))


async def _publish_while(ended: asyncio.Event, publishing: Awaitable[None]) -> None:
    """Await a publish, or raise LinkDown as soon as its connection is over: aiomqtt waits for
    the PUBACK (even for a QoS 0 packet not yet written) until PUBLISH_TIMEOUT_S although the
    connection under it is gone, and a device would sit that long in a dead publish."""
    publish = asyncio.ensure_future(publishing)
    end = asyncio.ensure_future(ended.wait())
    try:
        done, _ = await asyncio.wait((publish, end), return_when=asyncio.FIRST_COMPLETED)
    finally:
        end.cancel()
        publish.cancel()  # no effect when it is done; else aiomqtt forgets the pending PUBACK
    if publish not in done:
        raise LinkDown("the connection ended during a publish")
    try:
        publish.result()
    except aiomqtt.MqttError as exc:
        raise LinkDown(str(exc)) from exc


async def _settle(client: aiomqtt.Client, timeout_s: float = 2.0) -> None:
    """Wait until the client saw its connection end and take the error it recorded (else
    asyncio complains that nobody retrieved it)."""
    disconnected = client._disconnected
    with contextlib.suppress(Exception):  # whatever broke the link: it is broken, that is all
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(disconnected)
    if disconnected.done() and not disconnected.cancelled():
        disconnected.exception()


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()
