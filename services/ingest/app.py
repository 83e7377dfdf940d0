"""ingest wiring: the only MQTT subscriber of the console, and the sender of device commands.

No database. Each replica has a stable MQTT client id (ACUVIM_INSTANCE_ID) and a persistent
session. One replica (the default) subscribes to the device topics themselves; replicas
(ACUVIM_MQTT_SHARED_SUBSCRIPTIONS=true) subscribe through the shared subscription group
`{root}-ingest` so that they split the traffic and each message is handled once.

Why not always shared: Mosquitto (2.0.x) does not save shared subscriptions in its persistence
file. After a broker restart the session comes back without them, and whatever devices publish
before ingest subscribes again matches no subscriber: the broker acknowledges it to the device
and drops it. Plain subscriptions are saved and restored, so the broker queues those messages
for a single ingest. With replicas that window remains (as short as the quick first reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import aiomqtt
from prometheus_client import Counter, Gauge

from libs.common import bus
from libs.common.lifecycle import run_service
from libs.common.runtime import Runtime
from libs.common.settings import Settings
from services.ingest.handlers import Bridge, CommandSender
from services.ingest.readahead import read_ahead
from services.ingest.topics import subscriptions

log = logging.getLogger(__name__)

CONNECTED = Gauge("acuvim_ingest_mqtt_connected", "1 while connected to the MQTT broker")
RECONNECTS = Counter("acuvim_ingest_mqtt_reconnects_total", "MQTT connection losses")
# Backoff between MQTT connection attempts (s): quick first retries (with shared subscriptions,
# what devices publish after a broker restart is lost until ingest subscribes), then calmer.
RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
KEEPALIVE_S = 30


def mqtt_client(settings: Settings) -> aiomqtt.Client:
    url = urlsplit(settings.mqtt_url)
    client = aiomqtt.Client(
        hostname=url.hostname or "127.0.0.1", port=url.port or 1883,
        username=url.username, password=url.password,
        identifier=f"acuvim-ingest-{settings.bus_root}-{settings.instance_id}",
        clean_session=False, keepalive=KEEPALIVE_S,
        tls_params=aiomqtt.TLSParameters() if url.scheme == "mqtts" else None,
    )
    # PUBACK only once JetStream stored the message (paho's manual acks, under aiomqtt).
    client._client.manual_ack_set(True)
    read_ahead(client._client)
    return client


async def run_mqtt(rt: Runtime, sender: CommandSender) -> None:
    settings = rt.settings
    attempt = 0
    while not rt.stopping.is_set():
        client = mqtt_client(settings)
        bridge = Bridge(rt.js, rt.subjects, settings.topic_prefix, ack=_acker(client))
        try:
            async with client:
                await _subscribe(client, settings)
                attempt = 0
                CONNECTED.set(1)
                sender.client = client
                sender.connected.set()
                log.info("mqtt connected", extra={"broker": f"{client._hostname}"})
                await _read_until_stopped(rt, client, bridge)
                await bridge.drain()  # a graceful stop acks what is stored
        except aiomqtt.MqttError as exc:
            RECONNECTS.inc()
            log.warning("mqtt connection lost: %s", exc)
        finally:
            CONNECTED.set(0)
            sender.connected.clear()
            sender.client = None
        if rt.stopping.is_set():
            return
        delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
        attempt += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.stopping.wait(), timeout=delay)


async def _subscribe(client: aiomqtt.Client, settings: Settings) -> None:
    group = f"{settings.bus_root}-ingest"
    shared = settings.mqtt_shared_subscriptions
    for topic in subscriptions(settings.topic_prefix, group if shared else None):
        await client.subscribe(topic, qos=1)
    # A session kept from before the setting changed still holds the other kind: drop it after
    # subscribing (no gap), or each message would arrive twice.
    for topic in subscriptions(settings.topic_prefix, None if shared else group):
        await client.unsubscribe(topic)


def _acker(client: aiomqtt.Client) -> Callable[[aiomqtt.Message], None]:
    def ack(message: aiomqtt.Message) -> None:
        client._client.ack(message.mid, message.qos)

    return ack


async def _read_until_stopped(rt: Runtime, client: aiomqtt.Client, bridge: Bridge) -> None:
    async def read() -> None:
        async for message in client.messages:
            await bridge.handle(message, more_waiting=len(client.messages) > 0)

    reader = asyncio.create_task(read())
    stop = asyncio.create_task(rt.stopping.wait())
    done, _ = await asyncio.wait([reader, stop], return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if reader in done:
        reader.result()  # raises the MqttError that ended it
        return
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with Runtime.open("ingest", settings, stopping) as rt:
        sender = CommandSender(settings.topic_prefix)
        rt.consume(stream=rt.subjects.device_out_stream, durable="ingest-commands",
                   filter_subjects=[rt.subjects.command_out("*")],
                   handler=bus.each(sender.handle), batch_size=50)
        rt.worker("mqtt", lambda: run_mqtt(rt, sender))
        await rt.serve()


def run() -> None:
    run_service("ingest", main)
