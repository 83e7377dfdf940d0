"""Firmware download the way the gateway's SIM800 modem does it: small `Range` requests, resumed
after every break, then a SHA-256 check of the whole image.

The image is hashed as it arrives (a device writes it to flash, it never holds it in RAM);
`keep_bytes=True` also keeps it, for tests that compare what arrived with what was served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

log = logging.getLogger("simulator.ota")

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
ProgressCallback = Callable[[int, int], Awaitable[None]]


class DownloadFailed(Exception):
    """The image could not be fetched (HTTP status, too many breaks) or is not the one asked."""


class _LinkBroke(Exception):
    """The simulated radio link broke in the middle of a chunk."""


@dataclass
class ImageSink:
    """Where the image goes: a running SHA-256 and a byte count (and the bytes, on request)."""

    keep_bytes: bool = False
    received: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    data: bytearray = field(default_factory=bytearray)

    def write(self, piece: bytes) -> None:
        self.received += len(piece)
        self.digest.update(piece)
        if self.keep_bytes:
            self.data += piece

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@dataclass
class Download:
    """One image download; `run()` returns the sink once the whole image arrived and matched."""

    http: httpx.AsyncClient
    url: str
    device_id: str
    expected_size: int | None = None
    expected_sha256: str | None = None
    chunk_bytes: int = 64 * 1024
    bytes_per_s: float | None = None
    break_at: Iterable[int] = ()       # byte offsets where the link drops (the flaky device)
    max_breaks: int = 8                # retries before giving up, as the firmware does
    retry_delay_s: float = 0.5
    on_progress: ProgressCallback | None = None
    keep_bytes: bool = False
    breaks: int = 0                    # how many times it had to resume
    sink: ImageSink = field(init=False)
    _pending_breaks: list[int] = field(init=False, default_factory=list)

    async def run(self) -> ImageSink:
        self.sink = ImageSink(keep_bytes=self.keep_bytes)
        self._pending_breaks = sorted(set(self.break_at))
        total = self.expected_size
        while total is None or self.sink.received < total:
            try:
                total = await self._fetch_chunk(total)
            except (_LinkBroke, httpx.TransportError) as exc:
                self.breaks += 1
                if self.breaks > self.max_breaks:
                    raise DownloadFailed(f"link broke {self.breaks} times: {exc!r}") from exc
                log.info("download interrupted, resuming", extra={
                    "device_id": self.device_id, "offset": self.sink.received})
                await asyncio.sleep(self.retry_delay_s)
        self._verify(total)
        return self.sink

    async def _fetch_chunk(self, total: int | None) -> int:
        """Fetch the next chunk; answer the image's total size."""
        start = self.sink.received
        end = start + self.chunk_bytes - 1
        if total is not None:
            end = min(end, total - 1)
        headers = {"Range": f"bytes={start}-{end}", "X-Device-Id": self.device_id}
        async with self.http.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 416 and total is not None and start >= total:
                return total
            if response.status_code == 206:
                total = self._total_from(response, start, total)
                await self._read_body(response, skip_bytes=0)
            elif response.status_code == 200:
                # A server that ignores Range sends the whole file: skip what is already here.
                total = int(response.headers.get("content-length", 0)) or total
                await self._read_body(response, skip_bytes=start)
            else:
                raise DownloadFailed(f"HTTP {response.status_code} for {self.url}")
        if total is None:
            raise DownloadFailed("the server named no size (no Content-Range, no size given)")
        await self._report_progress(total)
        return total

    def _total_from(self, response: httpx.Response, start: int, total: int | None) -> int | None:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
        if match is None:
            return total
        if int(match.group(1)) != start:
            raise DownloadFailed(f"asked for offset {start}, got {match.group(0)}")
        if match.group(3) == "*":
            return total
        served = int(match.group(3))
        if self.expected_size is not None and served != self.expected_size:
            raise DownloadFailed(f"size mismatch: the server has {served} bytes, "
                                 f"the command said {self.expected_size}")
        return served

    async def _read_body(self, response: httpx.Response, *, skip_bytes: int) -> None:
        async for piece in response.aiter_bytes():
            if skip_bytes:
                dropped = min(skip_bytes, len(piece))
                piece, skip_bytes = piece[dropped:], skip_bytes - dropped
            if not piece:
                continue
            if self.expected_size is not None:
                piece = piece[: max(0, self.expected_size - self.sink.received)]
            piece = self._until_break(piece)
            self.sink.write(piece)
            if self.bytes_per_s:
                await asyncio.sleep(len(piece) / self.bytes_per_s)
            if self._pending_breaks and self.sink.received >= self._pending_breaks[0]:
                self._pending_breaks.pop(0)
                raise _LinkBroke(f"simulated break at byte {self.sink.received}")

    def _until_break(self, piece: bytes) -> bytes:
        if not self._pending_breaks:
            return piece
        room = self._pending_breaks[0] - self.sink.received
        return piece[: max(room, 0)] if room < len(piece) else piece

    async def _report_progress(self, total: int) -> None:
        if self.on_progress is not None:
            await self.on_progress(self.sink.received, total)

    def _verify(self, total: int) -> None:
        if self.sink.received != total:
            raise DownloadFailed(f"size mismatch: got {self.sink.received} of {total} bytes")
        if self.expected_sha256 and self.sink.sha256 != normalize_sha256(self.expected_sha256):
            raise DownloadFailed(
                f"checksum mismatch: expected {normalize_sha256(self.expected_sha256)}, "
                f"got {self.sink.sha256}")


def normalize_sha256(text: str) -> str:
    """`sha256:ABC...` or `ABC...` as lower-case hex."""
    text = text.strip().lower()
    return text.removeprefix("sha256:")
