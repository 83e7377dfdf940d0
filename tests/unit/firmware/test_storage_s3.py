"""The S3 firmware storage against a real S3-compatible server (moto's, on a local port)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from libs.common.errors import NotFound, ServiceUnavailable
from services.firmware.storage_s3 import PART_BYTES, S3Storage
from tests.support.console import free_port
from tests.support.s3 import S3Server, s3_server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server, pytest.MonkeyPatch.context() as env:
        for name, value in server.env().items():
            env.setenv(name, value)
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    return s3.create_bucket()


@pytest.fixture
def storage(bucket: str, tmp_path: Path) -> S3Storage:
    return S3Storage.from_url(f"s3://{bucket}/fw", tmp_path / "uploads")


def temp_file(storage: S3Storage, data: bytes) -> tuple[Path, str]:
    path = storage.temp_folder() / f"{len(data)}-{os.urandom(4).hex()}.part"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_a_large_image_goes_up_in_parts_under_its_digest(
        s3: S3Server, bucket: str, storage: S3Storage) -> None:
    image = os.urandom(2 * PART_BYTES + 12_345)
    source, digest = temp_file(storage, image)
    await storage.put(digest, source)
    key = f"fw/{digest[:2]}/{digest}.bin"
    assert s3.keys(bucket) == [key]
    assert s3.object_bytes(bucket, key) == image
    # A multipart upload's ETag ends in "-<parts>": streamed in three parts, not one body.
    assert s3.etag(bucket, key).endswith("-3")


async def test_ranged_reads_as_the_gateway_asks_for_them(storage: S3Storage) -> None:
    image = os.urandom(700_000)
    source, digest = temp_file(storage, image)
    await storage.put(digest, source)
    chunk = 256 * 1024
    pieces = [await storage.read(digest, offset, chunk)
              for offset in range(0, len(image), chunk)]
    assert [len(p) for p in pieces] == [chunk, chunk, len(image) - 2 * chunk]
    assert b"".join(pieces) == image
    assert await storage.read(digest, 1000, 10) == image[1000:1010]
    assert await storage.read(digest, len(image) - 5, 100) == image[-5:]
    assert await storage.read(digest, len(image), 100) == b""  # like the folder backend


async def test_the_same_digest_is_never_written_twice(s3: S3Server, bucket: str,
                                                      storage: S3Storage) -> None:
    image = os.urandom(50_000)
    source, digest = temp_file(storage, image)
    await storage.put(digest, source)
    assert await storage.exists(digest)
    # A second put under the same name is skipped: other bytes would show if it were written.
    impostor, _ = temp_file(storage, b"not the image")
    await storage.put(digest, impostor)
    assert s3.object_bytes(bucket, f"fw/{digest[:2]}/{digest}.bin") == image
    assert len(s3.keys(bucket)) == 1


async def test_delete_removes_the_object_and_tolerates_its_absence(
        s3: S3Server, bucket: str, storage: S3Storage) -> None:
    source, digest = temp_file(storage, b"firmware" * 1000)
    await storage.put(digest, source)
    await storage.delete(digest)
    assert s3.keys(bucket) == []
    assert not await storage.exists(digest)
    await storage.delete(digest)  # already gone: no error
    with pytest.raises(NotFound):
        await storage.read(digest, 0, 10)


async def test_only_digests_become_names(storage: S3Storage) -> None:
    for name in ("../../etc/passwd", "A" * 64, "0" * 63, ""):
        with pytest.raises(NotFound):
            await storage.read(name, 0, 10)
        with pytest.raises(NotFound):
            await storage.delete(name)


async def test_an_unreachable_store_is_a_503_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody there
    storage = S3Storage.from_url("s3://nowhere/fw", tmp_path)
    source, digest = temp_file(storage, b"image")
    with pytest.raises(ServiceUnavailable):
        await storage.put(digest, source)
    with pytest.raises(ServiceUnavailable):
        await storage.read(digest, 0, 10)
    failed_deletes = deletes_failed()
    await storage.delete(digest)  # logged and counted: the version is gone already
    assert deletes_failed() == failed_deletes + 1


def deletes_failed() -> float:
    value = REGISTRY.get_sample_value("acuvim_firmware_storage_errors_total",
                                      {"action": "delete"})
    return value or 0.0
