"""Firmware kept in an S3 bucket (ACUVIM_FIRMWARE_STORAGE=s3://bucket/fw): a console whose
firmware service talks to a real local S3-compatible server through the AWS_* variables."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.firmware.helpers import fresh_major, upload
from tests.support.console import Console
from tests.support.esp_image import build_image
from tests.support.s3 import S3Server, s3_server

SERVICES = ("gateway", "firmware")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.create_bucket()


@pytest.fixture(scope="module")
async def s3_console(tmp_path_factory: pytest.TempPathFactory, s3: S3Server,
                     bucket: str) -> AsyncIterator[Console]:
    env = {"ACUVIM_FIRMWARE_STORAGE": f"s3://{bucket}/fw", **s3.env()}
    async with Console.running(Path(tmp_path_factory.mktemp("firmware-s3")), SERVICES, 60,
                               **env) as console:
        yield console


def key_of(digest: str) -> str:
    return f"fw/{digest[:2]}/{digest}.bin"


async def test_upload_download_resume_and_delete_through_the_bucket(
        s3_console: Console, s3: S3Server, bucket: str) -> None:
    version = f"{fresh_major()}.0.0"
    image = build_image(version, code_bytes=5_600_000)  # over one 5 MiB part: multipart
    digest = hashlib.sha256(image).hexdigest()
    async with s3_console.client("admin") as admin:
        reply = await upload(admin, image, version)
        assert reply.status_code == 201, reply.text
        assert reply.json()["checksum"] == digest
        assert key_of(digest) in s3.keys(bucket)
        assert s3.object_bytes(bucket, key_of(digest)) == image
        assert s3.etag(bucket, key_of(digest)).endswith("-2")  # streamed in two parts
        assert not any(Path(s3_console.data_dir).rglob("*.part"))  # temp file gone

        url = f"/api/firmware/download/{version}"
        received = bytearray()
        async with admin.stream("GET", url) as broken:  # the link drops after ~300 KB
            assert broken.status_code == 200
            async for piece in broken.aiter_bytes():
                received += piece
                if len(received) > 300_000:
                    break
        resumed = await admin.get(url, headers={"Range": f"bytes={len(received)}-",
                                                "If-Range": f'"{digest}"'})
        assert resumed.status_code == 206
        assert resumed.headers["content-range"] == (
            f"bytes {len(received)}-{len(image) - 1}/{len(image)}")
        whole = bytes(received) + resumed.content
        assert whole == image and hashlib.sha256(whole).hexdigest() == digest

        assert (await admin.delete(f"/api/firmware/{version}")).status_code == 204
        assert key_of(digest) not in s3.keys(bucket)
        assert (await admin.get(url)).status_code == 404


async def test_one_object_for_two_versions_until_the_last_goes(
        s3_console: Console, s3: S3Server, bucket: str) -> None:
    first, second = f"{fresh_major()}.0.0", f"{fresh_major()}.0.0"
    image = build_image(first, code_bytes=300_000)
    digest = hashlib.sha256(image).hexdigest()
    async with s3_console.client("admin") as admin:
        assert (await upload(admin, image, first)).status_code == 201
        etag = s3.etag(bucket, key_of(digest))
        assert (await upload(admin, image, second, force="true")).status_code == 201
        assert s3.etag(bucket, key_of(digest)) == etag
        assert [k for k in s3.keys(bucket) if digest in k] == [key_of(digest)]
        assert s3_console.log("firmware").count(f"{key_of(digest)[3:]} written") == 1
        assert (await admin.delete(f"/api/firmware/{first}")).status_code == 204
        assert key_of(digest) in s3.keys(bucket)  # still used by the second version
        middle = await admin.get(f"/api/firmware/download/{second}",
                                 headers={"Range": "bytes=1000-1999"})
        assert middle.status_code == 206 and middle.content == image[1000:2000]
        assert (await admin.delete(f"/api/firmware/{second}")).status_code == 204
        assert key_of(digest) not in s3.keys(bucket)


async def test_an_object_gone_from_the_bucket_breaks_the_download_not_the_service(
        s3_console: Console, s3: S3Server, bucket: str) -> None:
    version = f"{fresh_major()}.0.0"
    image = build_image(version)
    async with s3_console.client("admin") as admin:
        assert (await upload(admin, image, version)).status_code == 201
        s3.client().delete_object(Bucket=bucket,
                                  Key=key_of(hashlib.sha256(image).hexdigest()))
        # The headers are out before the first chunk is read: the body is cut short, which a
        # device sees as a broken download (never as wrong bytes).
        with pytest.raises(httpx.RemoteProtocolError):
            await admin.get(f"/api/firmware/download/{version}")
        assert (await admin.get(f"/api/firmware/{version}")).status_code == 200  # still serving
