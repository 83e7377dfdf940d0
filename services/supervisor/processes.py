"""A child process of the supervisor: its own session, its output merged into one log stream.

Each child runs in its own session so that a Ctrl-C on the terminal reaches the supervisor
only, which then stops the services before the brokers and the database they need. A child
also gets SIGTERM if the supervisor dies, so that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_LINE_LIMIT_BYTES = 1024 * 1024


def _detach() -> None:
    """In the child before exec: own session, and SIGTERM when the supervisor dies."""
    os.setsid()
    with contextlib.suppress(Exception):  # not Linux: the session alone still helps
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LogSink:
    """One log stream on stdout: JSON lines as they are, other lines wrapped in the format."""

    def __init__(self, pretty: bool, out: BinaryIO | None = None) -> None:
        self.pretty = pretty
        self._out = out if out is not None else sys.stdout.buffer
        self._closed = False

    def write_line(self, source: str, line: bytes) -> None:
        text = line.rstrip(b"\r\n")
        if not text:
            return
        if not (text.startswith(b"{") or (self.pretty and source in _PYTHON_SERVICES)):
            text = self._wrap(source, text.decode(errors="replace"))
        if self._closed:
            return
        try:
            self._out.write(text + b"\n")
            self._out.flush()
        except (OSError, ValueError):  # terminal gone: keep running, to stop cleanly
            self._closed = True

    def _wrap(self, source: str, text: str) -> bytes:
        level = _level_of(text)
        if self.pretty:
            stamp = time.strftime("%H:%M:%S")
            return f"{stamp} {level.upper()[:4]:4} {source:9} {text}".encode()
        now = time.time()
        return orjson.dumps({
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            + f".{int(now % 1 * 1000):03d}Z",
            "level": level, "service": source, "msg": text,
        })


# How the programs we run mark their serious lines (PostgreSQL, nats-server, mosquitto, Python).
_ERROR_MARKS = ("ERROR:", "FATAL:", "PANIC:", "[ERR]", "[FTL]", "Error:", "Traceback ")
_WARNING_MARKS = ("WARNING:", "[WRN]", "Warning:")


def _level_of(text: str) -> str:
    if any(mark in text for mark in _ERROR_MARKS):
        return "error"
    if any(mark in text for mark in _WARNING_MARKS):
        return "warning"
    return "info"


# Their pretty lines already carry the service name; other programs' lines get it added.
_PYTHON_SERVICES = {"ingest", "telemetry", "health", "commands", "firmware", "notify",
                    "gateway"}


class Child:
    def __init__(self, name: str, argv: Sequence[str], sink: LogSink, *,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None,
                 stop_signal: int = signal.SIGTERM) -> None:
        self.name = name
        self.argv = list(argv)
        self.sink = sink
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=self.env, cwd=self.cwd,
            preexec_fn=_detach, limit=_LINE_LIMIT_BYTES)
        self._pump = asyncio.create_task(self._pump_lines(), name=f"log-{self.name}")

    async def _pump_lines(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the limit: pass it on in pieces
                line = await stream.read(_LINE_LIMIT_BYTES)
            if not line:
                return
            self.sink.write_line(self.name, line)

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._pump is not None:  # its last lines; asyncio.wait neither raises nor cancels
            await asyncio.wait({self._pump}, timeout=2)
        return code

    async def stop(self, timeout_s: float) -> int | None:
        """Ask the child to stop; after `timeout_s` kill its whole process group."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)
            try:
                return await asyncio.wait_for(self.wait(), timeout=timeout_s)
            except TimeoutError:
                log.warning("%s did not stop within %.0f s: killing it", self.name, timeout_s)
        self.kill_group()
        return await self.wait()

    def kill_group(self) -> None:
        """SIGKILL the child and anything it started in its session (e.g. postgres backends)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


async def run_once(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None, timeout_s: float = 120) -> tuple[int, str]:
    """Run a short command to completion (e.g. initdb); answer its code and output."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=dict(env) if env is not None else None, cwd=cwd,
        preexec_fn=_detach)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")
