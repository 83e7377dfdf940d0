"""The modem-style download: Range chunks, resumed after breaks, identical bytes and SHA-256."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from simulator.ota import Download, DownloadFailed
from tests.unit.simulator.range_server import range_server

IMAGE = b"\xe9\x05" + os.urandom(300_000)  # an ESP32 image starts with 0xE9 and a segment count
SHA = hashlib.sha256(IMAGE).hexdigest()
CHUNK = 64 * 1024


async def fetch(url: str, **options: object) -> tuple[Download, bytes, str]:
    async with httpx.AsyncClient() as http:
        download = Download(http=http, url=url, device_id="ACV-0011223344AA", chunk_bytes=CHUNK,
                            retry_delay_s=0.01, keep_bytes=True, **options)  # type: ignore[arg-type]
        sink = await download.run()
    return download, bytes(sink.data), sink.sha256


async def test_download_in_range_chunks_names_the_device() -> None:
    with range_server(IMAGE) as served:
        download, data, sha = await fetch(served.url, expected_size=len(IMAGE),
                                          expected_sha256=SHA)
    assert data == IMAGE and sha == SHA and download.breaks == 0
    ranges = [r for r, _ in served.requests]
    assert ranges[:2] == [f"bytes=0-{CHUNK - 1}", f"bytes={CHUNK}-{2 * CHUNK - 1}"]
    assert len(ranges) == -(-len(IMAGE) // CHUNK)
    assert {device for _, device in served.requests} == {"ACV-0011223344AA"}


async def test_breaks_of_the_link_resume_where_they_stopped_with_identical_bytes() -> None:
    breaks = [1_000, 70_000, 250_001]
    progress: list[tuple[int, int]] = []

    async def on_progress(received: int, total: int) -> None:
        progress.append((received, total))

    with range_server(IMAGE) as served:
        download, data, sha = await fetch(served.url, expected_sha256="SHA256:" + SHA.upper(),
                                          break_at=breaks, on_progress=on_progress)
    assert data == IMAGE and sha == SHA and download.breaks == 3
    resumed_at = [r for r, _ in served.requests if r and not r.startswith(("bytes=0-",))]
    for offset in breaks:
        assert any(r.startswith(f"bytes={offset}-") for r in resumed_at)
    assert progress[-1] == (len(IMAGE), len(IMAGE))
    assert [p for p, _ in progress] == sorted(p for p, _ in progress)


async def test_a_connection_cut_by_the_server_is_resumed() -> None:
    with range_server(IMAGE, cut_first_at=10_000) as served:
        download, data, sha = await fetch(served.url, expected_size=len(IMAGE),
                                          expected_sha256=SHA)
    assert data == IMAGE and sha == SHA and download.breaks == 1
    assert served.requests[1][0] == f"bytes=10000-{10_000 + CHUNK - 1}"


async def test_a_server_that_ignores_range_still_gives_the_whole_image() -> None:
    with range_server(IMAGE, ignore_range=True) as served:
        _, data, sha = await fetch(served.url, expected_sha256=SHA, break_at=[100_000])
    assert data == IMAGE and sha == SHA


async def test_a_wrong_checksum_or_a_missing_file_fails_clearly() -> None:
    with range_server(IMAGE) as served:
        with pytest.raises(DownloadFailed, match="checksum mismatch"):
            await fetch(served.url, expected_sha256="0" * 64)
        with pytest.raises(DownloadFailed, match="HTTP 404"):
            await fetch(served.url.replace("/firmware/", "/nothing/"))
        with pytest.raises(DownloadFailed, match="size mismatch"):
            await fetch(served.url, expected_size=len(IMAGE) + 10)
