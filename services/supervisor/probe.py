"""Short protocol probes: does a PostgreSQL server, a NATS server or an MQTT broker answer here?

A TCP connect alone is not enough (another program may hold the port), so each probe speaks the
first step of the protocol and needs no credentials to be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 1.5
# PostgreSQL's SSLRequest: any server answers it with one byte, 'S' or 'N', before auth.
_PG_SSL_REQUEST = struct.pack("!II", 8, 80877103)
_MQTT_CONNACK = 0x20
LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


async def _exchange(host: str, port: int, send: bytes, expect_bytes: int,
                    timeout_s: float) -> bytes:
    """Connect, send `send`, read up to `expect_bytes` (or a line when 0); b'' when no answer."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                if send:
                    writer.write(send)
                    await writer.drain()
                if expect_bytes:
                    return await reader.readexactly(expect_bytes)
                return await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return b""


async def postgres_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    host, port = host_port(url, 5432)
    return await _exchange(host, port, _PG_SSL_REQUEST, 1, timeout_s) in (b"S", b"N")


async def nats_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    host, port = host_port(url, 4222)
    return (await _exchange(host, port, b"", 0, timeout_s)).startswith(b"INFO ")


def _mqtt_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def mqtt_connect_packet(client_id: str, username: str | None = None,
                        password: str | None = None, keepalive_s: int = 5) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session) for the probe."""
    flags = 0x02 | (0x80 if username else 0) | (0x40 if username and password else 0)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive_s)
    body += _mqtt_string(client_id)
    if username:
        body += _mqtt_string(username)
        if password:
            body += _mqtt_string(password)
    assert len(body) < 128, "the probe packet fits a one-byte remaining length"
    return bytes([0x10, len(body)]) + body


async def mqtt_answers(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """A broker answers CONNECT with CONNACK (even one refusing our credentials answers)."""
    parts = urlsplit(url)
    host, port = host_port(url, 8883 if parts.scheme == "mqtts" else 1883)
    if parts.scheme == "mqtts":  # TLS brokers: a TCP connect is the probe we can afford here.
        return await tcp_answers(host, port, timeout_s)
    packet = mqtt_connect_packet("acuvim-probe", parts.username, parts.password)
    answer = await _exchange(host, port, packet, 4, timeout_s)
    return len(answer) == 4 and answer[0] == _MQTT_CONNACK


async def tcp_answers(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        # As servers do: a port with only TIME_WAIT leftovers counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_for_embedded(configured_url: str, default_port: int) -> int:
    """The configured port when it is local and free, else the default one, else any free one."""
    host, port = host_port(configured_url, default_port)
    for candidate in ([port] if host in LOCAL_HOSTS else []) + [default_port]:
        if port_is_free(candidate):
            return candidate
    return free_port()
