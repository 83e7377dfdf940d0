from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from services.ingest.readahead import READ_BYTES, ReadAhead


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_small_reads_are_served_from_one_receive(
        pair: tuple[socket.socket, socket.socket]) -> None:
    inner, peer = pair
    sock = ReadAhead(inner)
    peer.sendall(b"\x30\x05hello\x30\x03abc")
    assert sock.recv(1) == b"\x30"
    assert sock.pending() == 11  # the rest of what the kernel had is buffered
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert (sock.recv(1), sock.recv(1), sock.recv(3)) == (b"\x30", b"\x03", b"abc")
    assert sock.pending() == 0
    with pytest.raises(BlockingIOError):  # nothing buffered, nothing received: as a socket
        sock.recv(1)


def test_a_body_split_across_receives_is_read_in_parts(
        pair: tuple[socket.socket, socket.socket]) -> None:
    inner, peer = pair
    sock = ReadAhead(inner)
    peer.sendall(b"\x30\x0aabc")
    assert sock.recv(2) == b"\x30\x0a"
    assert sock.recv(10) == b"abc"  # fewer bytes than asked, as recv may answer
    peer.sendall(b"defghij")
    assert sock.recv(7) == b"defghij"


def test_large_reads_pass_through_and_the_end_of_stream_shows(
        pair: tuple[socket.socket, socket.socket]) -> None:
    inner, peer = pair
    sock = ReadAhead(inner)
    body = bytes(range(256)) * (READ_BYTES // 128)
    peer.sendall(body)
    got = b""
    while len(got) < len(body):
        got += sock.recv(len(body) - len(got))
    assert got == body
    peer.shutdown(socket.SHUT_WR)
    assert sock.recv(1) == b""


def test_other_socket_methods_are_the_wrapped_socket(
        pair: tuple[socket.socket, socket.socket]) -> None:
    inner, peer = pair
    sock = ReadAhead(inner)
    assert sock.fileno() == inner.fileno()
    assert sock.send(b"x") == 1
    assert peer.recv(1) == b"x"
