"""A real S3-compatible server for tests: moto's, in a thread of the test process, on a free
port. Services reach it through the standard AWS variables (`env()`).

    with s3_server() as s3:
        s3.create_bucket("fw-test")
        ... ACUVIM_FIRMWARE_STORAGE=s3://fw-test/fw with **s3.env()
        assert s3.keys("fw-test") == [...]
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.support.console import free_port


@dataclass
class S3Server:
    endpoint: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        """A boto3 client (another S3 library than the code under test uses)."""
        env = self.env()
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=env["AWS_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def create_bucket(self, prefix: str = "fw") -> str:
        """A new bucket (moto's buckets are global to the process: names must not repeat)."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def object_bytes(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def etag(self, bucket: str, key: str) -> str:
        return str(self.client().head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint=f"http://127.0.0.1:{port}")
    finally:
        server.stop()
