"""The broker of deploy/mosquitto, run for real: its entrypoint, config, ACL and password file.

A Mosquitto is started by deploy/mosquitto/entrypoint.sh on free ports, with the container's
paths moved to a temporary folder; device accounts come from deploy/mqtt_accounts.py. A
forbidden QoS 1 publish is dropped without an error in MQTT 3.1.1, so "it did not arrive" is
proved by a marker sent after it on the same connection arriving alone (the broker keeps order).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
import yaml

from deploy.mqtt_accounts import add_devices
from tests.support.console import free_port
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy" / "mosquitto"
CONSOLE_USER = "acuvim-console"
CONSOLE_PASSWORD = "console-test-password"

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="mosquitto is not installed on this machine")


@dataclass
class Broker:
    port: int
    tls_port: int
    root: Path
    passwords: dict[str, str]
    process: subprocess.Popen[bytes]

    def client(self, user: str | None, password: str | None = None,
               **kwargs: object) -> aiomqtt.Client:
        if user is not None and password is None:
            password = CONSOLE_PASSWORD if user == CONSOLE_USER else self.passwords[user]
        return aiomqtt.Client("127.0.0.1", self.port, username=user, password=password,
                              identifier=f"{user or 'anonymous'}-{os.urandom(3).hex()}",
                              **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        path = self.root / "broker.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _install_config(root: Path, port: int, tls_port: int) -> None:
    """The container's /mosquitto becomes `root`; listeners move to free loopback ports."""
    (root / "config").mkdir()
    (root / "data").mkdir()
    (root / "certs").mkdir()
    for name in ("mosquitto.conf", "acl", "tls.conf.in", "entrypoint.sh"):
        text = (SOURCE / name).read_text().replace("/mosquitto/", f"{root}/")
        text = text.replace("listener 1883\n", f"listener {port} 127.0.0.1\n")
        text = text.replace("listener 8883\n", f"listener {tls_port} 127.0.0.1\n")
        (root / "config" / name).write_text(text)


def _make_certificate(certs: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt")],
        check=True, capture_output=True,
    )
    for name in ("server.key", "server.crt"):
        (certs / name).chmod(0o644)  # read by the broker after it drops root


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[Broker]:
    # World-traversable, since Mosquitto drops root for its own user as in the container.
    root = Path(tempfile.mkdtemp(prefix="acuvim-mqtt-"))
    root.chmod(0o755)
    port, tls_port = free_port(), free_port()
    _install_config(root, port, tls_port)
    if shutil.which("openssl"):
        _make_certificate(root / "certs")
    made = add_devices(root / "config" / "devices.passwd", ["ACV-AAA", "ACV-BBB"])
    env = {**os.environ, "MOSQUITTO_ROOT": str(root),
           "ACUVIM_MQTT_CONSOLE_PASSWORD": CONSOLE_PASSWORD}
    with (root / "broker.log").open("wb") as log:
        process = subprocess.Popen(["sh", str(root / "config" / "entrypoint.sh")], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    broker = Broker(port, tls_port, root, dict(made), process)

    async def up() -> bool:
        assert process.poll() is None, f"broker exited:\n{broker.log()}"
        return _listening(port)

    try:
        await eventually(up, what="broker listening")
        yield broker
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


class Inbox:
    """Messages a client received, collected in the background."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._task = asyncio.create_task(self._read(client))

    async def _read(self, client: aiomqtt.Client) -> None:
        async for msg in client.messages:
            self.items.append((str(msg.topic), bytes(msg.payload)))

    def stop(self) -> None:
        self._task.cancel()

    async def wait_for(self, payload: bytes) -> list[tuple[str, bytes]]:
        async def arrived() -> bool:
            return any(p == payload for _, p in self.items)

        await eventually(arrived, timeout_s=5, what=f"{payload!r} delivered")
        return self.items


async def test_a_device_publishes_only_under_its_own_id(broker: Broker) -> None:
    async with broker.client(CONSOLE_USER) as console, broker.client("ACV-AAA") as device:
        await console.subscribe("$share/acuvim-ingest/acuvim/+/telemetry", qos=1)
        await console.subscribe("$share/acuvim-ingest/devices/register", qos=1)
        inbox = Inbox(console)
        try:
            await device.publish("acuvim/ACV-BBB/telemetry", b"forged", qos=1)
            await device.publish("acuvim/ACV-AAA/telemetry", b"own", qos=1)
            await device.publish("devices/register", b"register", qos=1)
            received = await inbox.wait_for(b"register")
        finally:
            inbox.stop()
    assert ("acuvim/ACV-AAA/telemetry", b"own") in received
    assert ("devices/register", b"register") in received
    assert all(payload != b"forged" for _, payload in received), received


async def test_the_console_session_keeps_what_devices_send_while_ingest_is_away(
        broker: Broker) -> None:
    # Mosquitto queues QoS 1 messages for a persistent session that is offline, up to
    # max_queued_messages (1,000 by default), and drops the rest after acknowledging them to the
    # device. Ingest's session must hold far more: a restart of ingest under a fleet's load.
    sent = 5000

    def ingest() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", broker.port, username=CONSOLE_USER,
                              password=CONSOLE_PASSWORD, identifier="ingest-queue-test",
                              clean_session=False)

    async with ingest() as console:
        await console.subscribe("acuvim/+/telemetry", qos=1)
    async with broker.client("ACV-AAA") as device:
        for n in range(sent):
            await device.publish("acuvim/ACV-AAA/telemetry", str(n).encode(), qos=1)
    async with ingest() as console:
        inbox = Inbox(console)
        try:
            await inbox.wait_for(str(sent - 1).encode())
        finally:
            inbox.stop()
    assert [int(p) for _, p in inbox.items] == list(range(sent))


async def test_a_device_reads_only_its_own_commands(broker: Broker) -> None:
    async with broker.client(CONSOLE_USER) as console, broker.client("ACV-AAA") as device:
        # Mosquitto may grant these subscriptions; the ACL is applied to every delivery.
        await device.subscribe("acuvim/ACV-AAA/cmd", qos=1)
        await device.subscribe("acuvim/ACV-BBB/cmd", qos=1)
        await device.subscribe("acuvim/#", qos=1)
        inbox = Inbox(device)
        try:
            await console.publish("acuvim/ACV-BBB/cmd", b"not for you", qos=1)
            await console.publish("acuvim/ACV-AAA/cmd", b"for you", qos=1)
            received = await inbox.wait_for(b"for you")
        finally:
            inbox.stop()
    assert ("acuvim/ACV-AAA/cmd", b"for you") in received
    assert all(payload != b"not for you" for _, payload in received), received


async def test_a_device_cannot_act_as_the_console(broker: Broker) -> None:
    async with (broker.client(CONSOLE_USER) as console, broker.client("ACV-AAA") as device,
                broker.client("ACV-BBB") as other):
        await device.subscribe("$share/acuvim-ingest/acuvim/+/telemetry", qos=1)
        await device.subscribe("acuvim/ACV-AAA/cmd", qos=1)
        await other.subscribe("acuvim/ACV-BBB/cmd", qos=1)
        device_inbox, other_inbox = Inbox(device), Inbox(other)
        try:
            # A publish returns after the broker's PUBACK, i.e. after it routed the message:
            # what the console sends next is delivered after anything these would have been.
            await device.publish("acuvim/ACV-BBB/cmd", b"forged command", qos=1)
            await other.publish("acuvim/ACV-BBB/telemetry", b"other's reading", qos=1)
            await console.publish("acuvim/ACV-BBB/cmd", b"marker", qos=1)
            await console.publish("acuvim/ACV-AAA/cmd", b"marker", qos=1)
            to_other = await other_inbox.wait_for(b"marker")
            to_device = await device_inbox.wait_for(b"marker")
        finally:
            device_inbox.stop()
            other_inbox.stop()
    assert all(payload != b"forged command" for _, payload in to_other), to_other
    assert all(payload != b"other's reading" for _, payload in to_device), to_device


@pytest.mark.parametrize(("user", "password"), [
    (None, None), ("ACV-AAA", "wrong-password"), ("ACV-ZZZ", "no-such-account"),
    (CONSOLE_USER, "wrong-password"),
])
async def test_unknown_or_anonymous_clients_are_refused(broker: Broker, user: str | None,
                                                        password: str | None) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client(user, password):
            pass


async def test_the_tls_listener_is_on_when_a_certificate_is_mounted(broker: Broker) -> None:
    if not (broker.root / "certs" / "server.crt").exists():
        pytest.skip("openssl is not installed: no certificate to mount")
    context = ssl.create_default_context(cafile=str(broker.root / "certs" / "server.crt"))
    async with aiomqtt.Client("127.0.0.1", broker.tls_port, username="ACV-AAA",
                              password=broker.passwords["ACV-AAA"], tls_context=context,
                              identifier="tls-ACV-AAA") as device:
        await device.publish("acuvim/ACV-AAA/heartbeat", b"{}", qos=1)


def test_the_compose_health_check_of_the_broker_passes(broker: Broker) -> None:
    """The `mqtt` health check of docker-compose.yml, run as the container would run it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    kind, command = compose["services"]["mqtt"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = command.replace("$$", "$").replace("-p 1883", f"-p {broker.port}")
    env = {**os.environ, "ACUVIM_MQTT_CONSOLE_USER": CONSOLE_USER,
           "ACUVIM_MQTT_CONSOLE_PASSWORD": CONSOLE_PASSWORD}
    assert subprocess.run(["sh", "-c", command], env=env, timeout=10).returncode == 0
    env["ACUVIM_MQTT_CONSOLE_PASSWORD"] = "wrong"
    assert subprocess.run(["sh", "-c", command], env=env, timeout=10,
                          capture_output=True).returncode != 0


def test_without_a_certificate_the_entrypoint_says_tls_is_off(tmp_path: Path) -> None:
    root = tmp_path / "mosquitto"
    root.mkdir()
    _install_config(root, free_port(), free_port())
    # Stop before starting a broker: replace the exec of mosquitto with a config test.
    script = (root / "config" / "entrypoint.sh").read_text().replace(
        'exec mosquitto -c', 'exec true')
    (root / "config" / "entrypoint.sh").write_text(script)
    env = {**os.environ, "MOSQUITTO_ROOT": str(root), "ACUVIM_MQTT_CONSOLE_PASSWORD": "x"}
    done = subprocess.run(["sh", str(root / "config" / "entrypoint.sh")], env=env,
                          capture_output=True, text=True, check=True)
    assert "TLS listener (8883) is off" in done.stderr
    assert not list((root / "data" / "conf.d").glob("*.conf"))
    assert (root / "data" / "passwd").read_text().startswith(f"{CONSOLE_USER}:$7$")


def test_the_entrypoint_refuses_to_start_without_the_console_password(tmp_path: Path) -> None:
    root = tmp_path / "mosquitto"
    root.mkdir()
    _install_config(root, free_port(), free_port())
    env = {k: v for k, v in os.environ.items() if k != "ACUVIM_MQTT_CONSOLE_PASSWORD"}
    done = subprocess.run(["sh", str(root / "config" / "entrypoint.sh")],
                          env={**env, "MOSQUITTO_ROOT": str(root)},
                          capture_output=True, text=True, timeout=10)
    assert done.returncode != 0
    assert "ACUVIM_MQTT_CONSOLE_PASSWORD is not set" in done.stderr
