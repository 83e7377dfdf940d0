"""Read-ahead for paho's socket: one recv per burst of MQTT packets instead of four per packet.

paho-mqtt (under aiomqtt) reads each packet with a recv for the command byte, one per byte of
the remaining length and one for the body, and handles one packet per readable event. Under
load that is most of the ingest's system calls. `ReadAhead` wraps the socket paho creates: it
receives up to READ_BYTES at a time and serves paho's small reads from that buffer, and its
`pending()` (the method aiomqtt's read callback already polls for TLS sockets) makes aiomqtt go
on reading packets until the buffer is empty, so no buffered packet waits for a readable event
that will not come. Everything else is the wrapped socket's.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as paho

READ_BYTES = 64 * 1024


class ReadAhead:
    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buffer):
            data = self._sock.recv(max(size, READ_BYTES))  # BlockingIOError passes through
            if len(data) <= size:
                return bytes(data)
            self._buffer, self._pos = data, 0
        end = self._pos + size
        out = self._buffer[self._pos:end]
        self._pos = end
        return out

    def pending(self) -> int:
        """Bytes received and not yet read (and, for TLS, decrypted bytes the socket holds)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return max(0, len(self._buffer) - self._pos) + int(inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def read_ahead(client: paho.Client) -> None:
    """Make every socket this paho client creates (each connect) a ReadAhead."""
    create = client._create_socket

    def create_socket() -> Any:
        return ReadAhead(create())

    client._create_socket = create_socket  # type: ignore[method-assign]
