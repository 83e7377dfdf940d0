"""The S3 backend of firmware storage (AWS S3 or an S3-compatible store such as MinIO).

Objects are `<prefix>/<sha[:2]>/<sha>.bin`, names from the digest only. Endpoint, region and
credentials come from the standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, AWS_ENDPOINT_URL, ...), read by obstore (Rust object_store) itself.

Uploads still land in a local temp file first (hashed as they arrive); `put` then streams that
file to the bucket in 5 MiB multipart parts, so an image is never held whole in memory.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store
from prometheus_client import Counter

from libs.common.errors import NotFound, ServiceUnavailable
from services.firmware.storage import file_path

log = logging.getLogger(__name__)

STORAGE_ERRORS = Counter("acuvim_firmware_storage_errors_total",
                         "Calls to the firmware object store that failed", ["action"])

# S3's smallest multipart part (but the last); at most PUT_PARTS_IN_FLIGHT are buffered at once.
PART_BYTES = 5 * 1024 * 1024
PUT_PARTS_IN_FLIGHT = 2
# A stuck store must fail, not hang: the gateway waits 5 s for a `read` and 30 s for the end
# of an upload (a 5 MiB part needs 20 s only below ~250 KB/s).
CONNECT_TIMEOUT = "2s"
REQUEST_TIMEOUT = "20s"
MAX_RETRIES = 2
RETRY_TIMEOUT = timedelta(seconds=10)

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


def _endpoint() -> str:
    return next((os.environ[v] for v in _ENDPOINT_VARIABLES if os.environ.get(v)), "")


def open_s3_store(url: str) -> S3Store:
    """The store for `s3://bucket/prefix`; plain HTTP only when the endpoint says http://
    (a local MinIO), since object_store refuses it by default."""
    return S3Store.from_url(
        url,
        client_options={"allow_http": _endpoint().startswith("http://"),
                        "connect_timeout": CONNECT_TIMEOUT, "timeout": REQUEST_TIMEOUT},
        retry_config={"max_retries": MAX_RETRIES, "retry_timeout": RETRY_TIMEOUT})


class S3Storage:
    def __init__(self, store: S3Store, temp_root: Path) -> None:
        self.store = store
        self._temp = temp_root
        self._temp.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_url(cls, url: str, temp_root: Path) -> S3Storage:
        return cls(open_s3_store(url), temp_root)

    def temp_folder(self) -> Path:
        return self._temp

    async def exists(self, digest: str) -> bool:
        try:
            await obstore.head_async(self.store, file_path(digest))
        except FileNotFoundError:
            return False
        except BaseError as exc:
            raise _unavailable("look up", digest, exc) from None
        return True

    async def put(self, digest: str, source: Path) -> None:
        key = file_path(digest)
        try:
            # Content-addressed: an object of this name already holds these very bytes.
            # Two replicas racing past this check write identical bytes, which is harmless.
            if not await self.exists(digest):
                await obstore.put_async(self.store, key, source, chunk_size=PART_BYTES,
                                        max_concurrency=PUT_PARTS_IN_FLIGHT)
                log.info("firmware object %s written to S3", key)
        except BaseError as exc:
            raise _unavailable("write", digest, exc) from None
        # `source` stays: the service removes its temp file whatever happened.

    async def read(self, digest: str, offset: int, length: int) -> bytes:
        key = file_path(digest)
        try:
            chunk = await obstore.get_range_async(self.store, key, start=offset, length=length)
        except FileNotFoundError:
            raise NotFound("the firmware binary is missing from storage") from None
        except BaseError as exc:
            # S3 refuses a range starting at or past the end (416); the folder answers nothing.
            if await self._size(digest) <= offset:
                return b""
            raise _unavailable("read", digest, exc) from None
        return bytes(chunk)

    async def _size(self, digest: str) -> int:
        try:
            meta = await obstore.head_async(self.store, file_path(digest))
        except FileNotFoundError:
            raise NotFound("the firmware binary is missing from storage") from None
        except BaseError as exc:
            raise _unavailable("look up", digest, exc) from None
        return int(meta["size"])

    async def delete(self, digest: str) -> None:
        """Remove the object; one that cannot be removed now is left (logged and counted),
        since its version is already gone from the database and nothing will read it."""
        key = file_path(digest)
        try:
            await obstore.delete_async(self.store, key)  # absent is fine
        except FileNotFoundError:
            pass
        except BaseError as exc:
            STORAGE_ERRORS.labels(action="delete").inc()
            log.error("firmware object %s left in the bucket (unused): %s", key, exc)


def _unavailable(action: str, digest: str, exc: BaseError) -> ServiceUnavailable:
    # The full error (with its request) goes to the log; callers get a short problem.
    STORAGE_ERRORS.labels(action=action).inc()
    log.warning("firmware storage could not %s %s: %s", action, digest, exc)
    return ServiceUnavailable(f"firmware storage could not {action} the object; try again")
