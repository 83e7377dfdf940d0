"""Downloads as a GSM device does them: whole, broken off and resumed with Range, If-Range, 416."""

from __future__ import annotations

import hashlib

import httpx

from tests.integration.firmware.helpers import fresh_major, register, upload
from tests.support.console import Console
from tests.support.esp_image import build_image


async def published(console: Console, device_id: str) -> tuple[str, bytes]:
    version = f"{fresh_major()}.0.0"
    image = build_image(version, code_bytes=700_000)  # several 256 KiB chunks
    await register(console, device_id, "1.0.0")
    async with console.client("admin") as admin:
        assert (await upload(admin, image, version)).status_code == 201
    return version, image


async def test_download_whole_then_resume_after_a_broken_link(console: Console,
                                                               device_id: str) -> None:
    version, image = await published(console, device_id)
    url = f"/api/firmware/download/{version}"
    etag = f'"{hashlib.sha256(image).hexdigest()}"'
    async with httpx.AsyncClient(base_url=console.base_url, timeout=15,
                                 headers={"X-Device-Id": device_id}) as device:
        whole = await device.get(url)
        assert whole.status_code == 200 and whole.content == image
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["etag"] == etag
        assert whole.headers["content-length"] == str(len(image))

        received = bytearray()
        async with device.stream("GET", url) as broken:  # the link drops after ~300 KB
            async for piece in broken.aiter_bytes():
                received += piece
                if len(received) > 300_000:
                    break
        resumed = await device.get(url, headers={"Range": f"bytes={len(received)}-",
                                                 "If-Range": etag})
        assert resumed.status_code == 206
        assert resumed.headers["content-range"] == (
            f"bytes {len(received)}-{len(image) - 1}/{len(image)}")
        assert int(resumed.headers["content-length"]) == len(image) - len(received)
        assert hashlib.sha256(bytes(received) + resumed.content).digest() == (
            hashlib.sha256(image).digest())


async def test_ranges_if_range_and_unsatisfiable(console: Console, device_id: str) -> None:
    version, image = await published(console, device_id)
    url = f"/api/firmware/download/{version}?device_id={device_id}"
    async with console.client(None) as device:
        middle = await device.get(url, headers={"Range": "bytes=1000-1999"})
        assert middle.status_code == 206 and middle.content == image[1000:2000]
        tail = await device.get(url, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == image[-100:]
        beyond = await device.get(url, headers={"Range": f"bytes={len(image)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(image)}"
        assert beyond.headers["content-type"].startswith("application/problem+json")
        stale = await device.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == image
        several = await device.get(url, headers={"Range": "bytes=0-9,20-29"})
        assert several.status_code == 200 and several.content == image


async def test_who_may_download(console: Console, device_id: str) -> None:
    version, image = await published(console, device_id)
    url = f"/api/firmware/download/{version}"
    async with console.client(None) as anonymous:
        assert (await anonymous.get(url)).status_code == 401
        stranger = await anonymous.get(url, headers={"X-Device-Id": "ACV-000000000000"})
        assert stranger.status_code == 401
        missing = await anonymous.get("/api/firmware/download/0.0.1",
                                      headers={"X-Device-Id": device_id})
        assert missing.status_code == 404
    async with console.client("viewer") as person:
        by_token = await person.get(url)
        assert by_token.status_code == 200 and by_token.content == image
    async with httpx.AsyncClient(base_url=console.base_url) as raw:
        bad_token = await raw.get(url, headers={"Authorization": "Bearer nonsense"})
        assert bad_token.status_code == 401
