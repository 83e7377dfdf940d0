"""Firmware versions through the API: upload (validated, stored once), list, get, edit, delete,
and what devices are told when they check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.firmware.helpers import fresh_major, register, upload, uploaded
from tests.support.console import Console
from tests.support.esp_image import bad_images, build_image


async def test_upload_stores_what_the_image_says_and_lists_it(console: Console) -> None:
    version = f"{fresh_major()}.2.0"
    image = build_image(version, project="acuvim-gw", idf_version="v5.1.2", code_bytes=600_000)
    async with console.client("admin") as admin:
        reply = await upload(admin, image, version, release_notes="faster modbus",
                             hardware="TTGO T-Call v1.4", mandatory="true")
        assert reply.status_code == 201, reply.text
        body = reply.json()
        assert body["checksum"] == hashlib.sha256(image).hexdigest()
        assert (body["file_size"], body["project_name"], body["idf_version"]) == (
            len(image), "acuvim-gw", "v5.1.2")
        assert body["mandatory"] is True and body["active"] is True
        assert body["build_time"] == "Dec  4 2025 10:00:00"
        assert body["uploaded_by"] == "admin@example.com"
        stored = Path(console.data_dir, "firmware", body["checksum"][:2],
                      f"{body['checksum']}.bin")
        assert stored.read_bytes() == image
        got = await admin.get(f"/api/firmware/{version}")
        assert got.status_code == 200 and got.json()["checksum"] == body["checksum"]
        listed = (await admin.get("/api/firmware", params={"limit": 1000})).json()
        assert version in [v["version"] for v in listed["items"]]
        again = await upload(admin, image, version)
        assert again.status_code == 409


async def test_the_same_binary_under_two_versions_is_stored_once(console: Console) -> None:
    first, second = f"{fresh_major()}.0.0", f"{fresh_major()}.0.0"
    image = build_image(first)
    async with console.client("admin") as admin:
        assert (await upload(admin, image, first)).status_code == 201
        assert (await upload(admin, image, second, force="true")).status_code == 201
        digest = hashlib.sha256(image).hexdigest()
        stored = Path(console.data_dir, "firmware", digest[:2], f"{digest}.bin")
        assert (await admin.delete(f"/api/firmware/{first}")).status_code == 204
        assert stored.exists()  # still used by the second version
        assert (await admin.delete(f"/api/firmware/{second}")).status_code == 204
        assert not stored.exists()
        assert (await admin.get(f"/api/firmware/{second}")).status_code == 404


@pytest.mark.parametrize("kind", sorted(bad_images()))
async def test_bad_images_are_refused_with_422(console: Console, kind: str) -> None:
    async with console.client("admin") as admin:
        reply = await upload(admin, bad_images()[kind], f"{fresh_major()}.0.0")
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert "not a valid ESP32 application image" in reply.json()["detail"]


async def test_version_rules(console: Console) -> None:
    major = fresh_major()
    async with console.client("admin") as admin:
        not_semver = await upload(admin, build_image("1.2"), "1.2")
        assert not_semver.status_code == 422 and "semantic" in not_semver.json()["detail"]
        mismatch = await upload(admin, build_image(f"{major}.0.1"), f"{major}.0.0")
        assert mismatch.status_code == 422 and "force" in mismatch.json()["detail"]
        forced = await upload(admin, build_image(f"{major}.0.1"), f"{major}.0.0", force="true")
        assert forced.status_code == 201 and forced.json()["app_version"] == f"{major}.0.1"
        no_file = await admin.post("/api/firmware", files={"version": (None, "9.9.9")})
        assert no_file.status_code == 422


async def test_over_16_mib_is_413_and_only_admins_upload(console: Console) -> None:
    big = build_image("1.0.0") + b"\0" * (16 * 1024 * 1024)
    async with console.client("admin") as admin:
        reply = await upload(admin, big, f"{fresh_major()}.0.0")
    assert reply.status_code == 413
    async with console.client("operator") as operator:
        refused = await upload(operator, build_image("1.0.0"), f"{fresh_major()}.0.0")
    assert refused.status_code == 403


async def test_edit_and_check_follow_semantic_order(console: Console, device_id: str) -> None:
    # Above every other test's versions: those made for all hardware count for this device too.
    major = fresh_major() + 10_000_000
    hardware = f"hw-{device_id}"  # versions of this test only
    await register(console, device_id, f"{major}.9.0", hardware=hardware)
    async with console.client("admin") as admin:
        for version in (f"{major}.10.0", f"{major}.9.0", f"{major + 1}.0.0-rc.1"):
            await uploaded(admin, version, hardware=hardware)
        # Uploaded last but lower: 1.10.0 > 1.9.0 and 2.0.0-rc.1 is a pre-release of 2.0.0.
        check = (await admin.get("/api/firmware/check", params={
            "device_id": device_id})).json()
        assert check["update_available"] and check["version"] == f"{major + 1}.0.0-rc.1"
        assert check["url"] == f"{console.base_url}/api/firmware/download/{major + 1}.0.0-rc.1"
        edited = await admin.patch(f"/api/firmware/{major + 1}.0.0-rc.1",
                                   json={"active": False, "release_notes": "pulled"})
        assert edited.status_code == 200 and edited.json()["active"] is False
        check = (await admin.get("/api/firmware/check", headers={"X-Device-Id": device_id},
                                 params={"current_version": f"{major}.9.0"})).json()
        assert check["version"] == f"{major}.10.0" and check["size"] > 0
        assert len(check["checksum"]) == 64 and check["mandatory"] is False
        current = (await admin.get("/api/firmware/check", params={
            "device_id": device_id, "current_version": f"{major}.10.0"})).json()
        assert current == {"update_available": False, "version": None, "url": None,
                           "size": None, "checksum": None, "release_notes": None,
                           "mandatory": None}
    async with console.client(None) as anonymous:
        unknown = await anonymous.get("/api/firmware/check", params={"device_id": "ACV-NOPE"})
        assert unknown.status_code == 404
        nobody = await anonymous.get("/api/firmware/check")
        assert nobody.status_code == 401
