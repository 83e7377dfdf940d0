"""Request and response types of the firmware service's RPC (`{root}.rpc.firmware.*`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from libs.common.paging import PageQuery

# A binary travels in chunks of at most this many raw bytes (base64 in JSON: ~342 KiB).
CHUNK_BYTES = 256 * 1024
MAX_IMAGE_BYTES = 16 * 1024 * 1024

RolloutState = Literal["running", "paused", "completed", "cancelled"]
DeviceState = Literal["queued", "sent", "downloading", "rebooting", "succeeded", "failed",
                      "rolled_back", "timed_out"]


# -- upload (begin on the service, then chunks to the replica that took it) ------------------
class UploadBegin(msgspec.Struct, frozen=True, kw_only=True):
    actor: str
    version: str | None = None  # when known up front: a duplicate fails before any byte moves


class UploadStarted(msgspec.Struct, frozen=True, kw_only=True):
    upload_id: str
    route: str  # operations `{route}.chunk|finish|abort` reach the replica holding the upload


class UploadChunk(msgspec.Struct, frozen=True, kw_only=True):
    upload_id: str
    seq: int
    data: bytes


class UploadFinish(msgspec.Struct, frozen=True, kw_only=True):
    upload_id: str
    version: str
    filename: str = "firmware.bin"
    release_notes: str | None = None
    hardware: str | None = None
    mandatory: bool = False
    force: bool = False


class UploadRef(msgspec.Struct, frozen=True, kw_only=True):
    upload_id: str


# -- versions -----------------------------------------------------------------------------------
class FirmwareVersion(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    filename: str
    file_size: int
    checksum: str
    release_notes: str | None
    hardware: str | None
    mandatory: bool
    active: bool
    project_name: str | None
    idf_version: str | None
    build_time: str | None
    app_version: str | None
    uploaded_by: str | None
    created_at: datetime
    updated_at: datetime


class VersionsQuery(PageQuery, frozen=True, kw_only=True):
    hardware: str | None = None


class VersionRef(msgspec.Struct, frozen=True, kw_only=True):
    version: str


class VersionUpdate(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    active: bool | UnsetType = UNSET
    mandatory: bool | UnsetType = UNSET
    hardware: str | UnsetType | None = UNSET
    release_notes: str | UnsetType | None = UNSET


# -- devices: check and download -------------------------------------------------------------
class CheckRequest(msgspec.Struct, frozen=True, kw_only=True):
    device_id: str | None = None
    current_version: str | None = None
    hardware: str | None = None


class CheckResponse(msgspec.Struct, frozen=True, kw_only=True):
    update_available: bool
    version: str | None = None
    url: str | None = None
    size: int | None = None
    checksum: str | None = None
    release_notes: str | None = None
    mandatory: bool | None = None


class DownloadOpen(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    device_id: str | None = None


class DownloadInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    size: int
    checksum: str


class ReadRequest(msgspec.Struct, frozen=True, kw_only=True):
    checksum: str
    offset: int
    length: int


class ReadChunk(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes


class DownloadRecord(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    device_id: str | None = None
    range_start: int
    range_end: int  # inclusive, as in Content-Range
    bytes: int  # what actually went out (a GSM link may break half-way)


# -- deployments and rollouts ------------------------------------------------------------------
class DeployRequest(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    device_ids: list[str] | None = None
    group_id: str | None = None
    stages: list[float] | None = None  # cumulative targets; default one stage of everything
    stage_unit: Literal["percent", "count"] = "percent"
    max_concurrent: int = 50
    failure_threshold: float = 0.1  # below 1: a fraction of the stage; from 1: a count
    device_timeout_s: float = 3600.0
    created_by: str | None = None


class RolloutRef(msgspec.Struct, frozen=True, kw_only=True):
    rollout_id: str
    actor: str | None = None


class RolloutsQuery(PageQuery, frozen=True, kw_only=True):
    state: RolloutState | None = None
    version: str | None = None


class GroupMembers(msgspec.Struct, frozen=True, kw_only=True):
    device_ids: list[str]
