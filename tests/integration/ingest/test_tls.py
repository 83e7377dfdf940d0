"""Ingest's MQTT client on a burst, over plain MQTT and TLS, against a real Mosquitto.

Ingest reads paho's socket ahead (services/ingest/readahead.py): one recv takes many packets.
A burst must arrive whole and in order, none left in the buffer waiting for a readable event
that never comes; with TLS the SSLSocket also holds decrypted bytes of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from libs.common.settings import load_settings
from services.ingest.app import mqtt_client
from tests.support.console import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None or shutil.which("openssl")
                                is None, reason="mosquitto or openssl is not installed here")


@pytest.fixture
def tls_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """(plain port, TLS port) of a Mosquitto whose certificate the default trust store holds."""
    # Readable by the broker after it drops root for its own user (pytest's tmp_path is not).
    tmp_path = Path(tempfile.mkdtemp(prefix="acuvim-tls-"))
    tmp_path.chmod(0o755)
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    key.chmod(0o644)
    plain, tls = free_port(), free_port()
    config = tmp_path / "mosquitto.conf"
    # No in-flight window: a queue comes out in one burst, many packets to a read.
    config.write_text(f"per_listener_settings false\nallow_anonymous true\n"
                      f"max_inflight_messages 0\nmax_queued_messages 0\n"
                      f"listener {plain} 127.0.0.1\n"
                      f"listener {tls} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # what load_default_certs trusts
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield plain, tls
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("scheme", ["mqtts", "mqtt"])
async def test_a_burst_arrives_whole_and_in_order(tls_broker: tuple[int, int],
                                                  scheme: str) -> None:
    plain, tls = tls_broker
    port = tls if scheme == "mqtts" else plain
    settings = load_settings({"ACUVIM_MQTT_URL": f"{scheme}://127.0.0.1:{port}",
                              "ACUVIM_INSTANCE_ID": f"burst-{scheme}"})

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(listening, what="the broker listening")
    # Ingest's persistent session subscribes and goes away; what devices send meanwhile waits
    # in the broker and comes out in one burst when it is back.
    async with mqtt_client(settings) as ingest:
        await ingest.subscribe("burst/+/telemetry", qos=1)
    count, body = 3000, b"x" * 700
    async with aiomqtt.Client("127.0.0.1", plain) as device:
        for n in range(count):
            await device.publish(f"burst/ACV-{n % 7}/telemetry", str(n).encode() + body, qos=1)
    seen: list[int] = []
    ingest = mqtt_client(settings)
    ingest._client.manual_ack_set(False)  # nothing here stores messages: paho acknowledges
    async with ingest:
        async def read() -> None:
            async for message in ingest.messages:
                assert isinstance(message.payload, bytes)
                seen.append(int(message.payload[:-len(body)]))
                if len(seen) == count:
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), timeout=10)
    assert len(seen) == count and seen == list(range(count))
