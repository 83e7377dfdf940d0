"""Firmware versions, device update checks and downloads, deployments (firmware service).

Binaries never travel as one message: an upload is parsed as a stream and sent on in chunks
(`upload.begin`, then `{route}.chunk|finish|abort` on the replica that took it); a download reads
chunks (`read`) and streams them out, answering `Range` itself, in constant memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.response import Stream
from multipart import MultipartSegment, ParserError, PushMultipartParser, parse_options_header

from libs.common.errors import BadRequest, ConsoleError, InvalidInput, TooLarge, Unauthorized
from libs.common.rpc import RpcClient
from services.firmware.schemas import (
    CHUNK_BYTES,
    MAX_IMAGE_BYTES,
    DownloadInfo,
    ReadChunk,
    UploadStarted,
)
from services.gateway.api.forward import DEVICE_ID, actor, query_dict, rpc_of
from services.gateway.auth.guard import admin, operator, viewer
from services.gateway.auth.tokens import Principal
from services.gateway.problems import problem

log = logging.getLogger(__name__)

# The form around the file (boundaries, other fields) may add this much to the body.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 16 * 1024
FORM_FIELDS = ("version", "release_notes", "hardware", "mandatory", "force")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_records: set[asyncio.Task[Any]] = set()  # download records in flight (kept from the GC)


class FirmwareController(Controller):
    path = "/api/firmware"
    tags = ["firmware"]

    @get("/", guards=[viewer], summary="List firmware versions (newest version first)")
    async def list_versions(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("firmware", "versions.list", query_dict(request))

    @post("/", guards=[admin], status_code=201,
          request_max_body_size=MAX_IMAGE_BYTES + FORM_OVERHEAD_BYTES,
          summary="Upload a version (multipart: file, version, release_notes, hardware, "
                  "mandatory, force)")
    async def upload(self, request: Request[Any, Any, Any]) -> Any:
        return await receive_upload(request, rpc_of(request))

    @get("/check", summary="Check for an update (devices: device_id, current_version, hardware)")
    async def check(self, request: Request[Any, Any, Any]) -> Any:
        payload = query_dict(request, ints=())
        device_id = device_of(request)
        if device_id is not None:
            payload["device_id"] = device_id
        return await rpc_of(request).call("firmware", "check", payload)

    @get("/download/{version:str}", summary="Download a binary (devices; Range, If-Range)")
    async def download(self, request: Request[Any, Any, Any], version: str) -> Any:
        return await serve_download(request, version)

    @post("/deploy", guards=[operator], status_code=202,
          summary="Deploy a version ({version, device_ids, stages?, stage_unit?, "
                  "max_concurrent?, failure_threshold?, device_timeout_s?})")
    async def deploy(self, request: Request[Any, Any, Any], data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("firmware", "deploy",
                                          {**data, "created_by": actor(request)})

    @get("/rollouts", guards=[viewer], summary="List rollouts (state, version)")
    async def list_rollouts(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("firmware", "rollouts.list", query_dict(request))

    @get("/rollouts/{rollout_id:uuid}", guards=[viewer],
         summary="A rollout with per-state counts and per-device state")
    async def get_rollout(self, request: Request[Any, Any, Any], rollout_id: UUID) -> Any:
        return await rpc_of(request).call("firmware", "rollouts.get",
                                          {"rollout_id": str(rollout_id)})

    @post("/rollouts/{rollout_id:uuid}/{action:str}", guards=[operator], status_code=200,
          summary="Pause, resume or cancel a rollout")
    async def rollout_action(self, request: Request[Any, Any, Any], rollout_id: UUID,
                             action: str) -> Any:
        if action not in ("pause", "resume", "cancel"):
            raise BadRequest("the action is pause, resume or cancel")
        return await rpc_of(request).call("firmware", f"rollouts.{action}", {
            "rollout_id": str(rollout_id), "actor": actor(request)})

    @get("/{version:str}", guards=[viewer], summary="Get a firmware version")
    async def get_version(self, request: Request[Any, Any, Any], version: str) -> Any:
        return await rpc_of(request).call("firmware", "versions.get", {"version": version})

    @patch("/{version:str}", guards=[admin],
           summary="Change active, mandatory, hardware or release_notes")
    async def update_version(self, request: Request[Any, Any, Any], version: str,
                             data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("firmware", "versions.update",
                                          {**data, "version": version})

    @put("/{version:str}", guards=[admin], summary="Same as PATCH")
    async def replace_version(self, request: Request[Any, Any, Any], version: str,
                              data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("firmware", "versions.update",
                                          {**data, "version": version})

    @delete("/{version:str}", guards=[admin], status_code=204,
            summary="Delete a version (409 while a rollout uses it)")
    async def delete_version(self, request: Request[Any, Any, Any], version: str) -> None:
        await rpc_of(request).call("firmware", "versions.delete", {"version": version})


class GroupDeployController(Controller):
    path = "/api/groups/{group_id:uuid}"
    tags = ["firmware"]

    @post("/deploy", guards=[operator], status_code=202,
          summary="Deploy firmware to every device of the group")
    async def group_deploy(self, request: Request[Any, Any, Any], group_id: UUID,
                           data: dict[str, Any]) -> Any:
        payload = {**data, "group_id": str(group_id), "created_by": actor(request)}
        return await rpc_of(request).call("firmware", "deploy", payload)


# -- devices ------------------------------------------------------------------------------------
def device_of(request: Request[Any, Any, Any]) -> str | None:
    """The device naming itself (header or query); without one, a signed-in user is needed."""
    device_id = request.headers.get("x-device-id") or request.query_params.get("device_id")
    if device_id:
        if not DEVICE_ID.match(device_id):
            raise Unauthorized("not a device id")
        request.app.state.device_rate_limit.count(device_id)
        return device_id
    if not isinstance(request.scope.get("user"), Principal):
        raise Unauthorized("name the device (X-Device-Id or device_id) or send a bearer token")
    return None


def requested_range(headers: Any, etag: str, size: int) -> tuple[int, int] | None:
    """The single byte range asked for (inclusive), None for the whole file; 416 when none of it
    exists. A malformed or multi-range header is ignored (the whole file), as RFC 9110 allows."""
    raw = headers.get("range")
    if not raw:
        return None
    if_range = headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        return None  # the client holds another version: it gets the whole new file
    match = _RANGE.match(raw.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


class _Unsatisfiable(ConsoleError):
    status = 416
    title = "Range not satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the file has {size} bytes")
        self.size = size


def _unsatisfiable(size: int) -> _Unsatisfiable:
    return _Unsatisfiable(size)


async def serve_download(request: Request[Any, Any, Any], version: str) -> Response[Any]:
    rpc = rpc_of(request)
    device_id = device_of(request)
    info = await rpc.call("firmware", "download.open",
                          {"version": version, "device_id": device_id}, into=DownloadInfo)
    etag = f'"{info.checksum}"'
    try:
        wanted = requested_range(request.headers, etag, info.size)
    except _Unsatisfiable as exc:
        return problem(416, exc.detail, headers={"Content-Range": f"bytes */{exc.size}",
                                                 "Accept-Ranges": "bytes", "ETag": etag})
    start, end = wanted or (0, info.size - 1)
    headers = {"Accept-Ranges": "bytes", "ETag": etag, "Content-Length": str(end - start + 1),
               "Content-Disposition": f'attachment; filename="firmware-{info.version}.bin"'}
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    body = stream_binary(rpc, info, start, end, device_id)
    return Stream(body, status_code=status, headers=headers,
                  media_type="application/octet-stream")


async def stream_binary(rpc: RpcClient, info: DownloadInfo, start: int, end: int,
                        device_id: str | None) -> AsyncIterator[bytes]:
    sent = 0
    try:
        while start + sent <= end:
            length = min(CHUNK_BYTES, end - start - sent + 1)
            chunk = await rpc.call("firmware", "read", {
                "checksum": info.checksum, "offset": start + sent, "length": length},
                into=ReadChunk)
            if not chunk.data:
                break
            yield chunk.data
            sent += len(chunk.data)
    finally:
        # Recorded even when the link broke half-way: that is what an operator wants to see.
        record = asyncio.create_task(_record(rpc, {
            "version": info.version, "device_id": device_id, "range_start": start,
            "range_end": end, "bytes": sent}))
        _records.add(record)
        record.add_done_callback(_records.discard)


async def _record(rpc: RpcClient, payload: dict[str, Any]) -> None:
    try:
        await rpc.call("firmware", "download.record", payload)
    except ConsoleError as exc:
        log.warning("download of %s not recorded: %s", payload["version"], exc.detail)


# -- upload -------------------------------------------------------------------------------------
class _UploadSender:
    """Sends the file part on to the firmware service in chunks as it arrives."""

    def __init__(self, rpc: RpcClient, actor_name: str) -> None:
        self.rpc = rpc
        self.actor = actor_name
        self.started: UploadStarted | None = None
        self.buffer = bytearray()
        self.seq = 0
        self.size_bytes = 0

    async def begin(self, version: str | None) -> None:
        self.started = await self.rpc.call("firmware", "upload.begin", {
            "actor": self.actor, "version": version}, into=UploadStarted)

    async def add(self, data: bytes) -> None:
        self.size_bytes += len(data)
        if self.size_bytes > MAX_IMAGE_BYTES:
            raise TooLarge(f"a firmware image may be at most {MAX_IMAGE_BYTES} bytes")
        self.buffer += data
        while len(self.buffer) >= CHUNK_BYTES:
            await self._send(bytes(self.buffer[:CHUNK_BYTES]))
            del self.buffer[:CHUNK_BYTES]

    async def flush(self) -> None:
        if self.buffer:
            await self._send(bytes(self.buffer))
            self.buffer.clear()

    async def _send(self, data: bytes) -> None:
        assert self.started is not None
        await self.rpc.call("firmware", f"{self.started.route}.chunk", {
            "upload_id": self.started.upload_id, "seq": self.seq, "data": data})
        self.seq += 1

    async def finish(self, fields: dict[str, Any]) -> Any:
        assert self.started is not None
        return await self.rpc.call("firmware", f"{self.started.route}.finish",
                                   {**fields, "upload_id": self.started.upload_id},
                                   timeout_s=30.0)

    async def abort(self) -> None:
        if self.started is not None:
            with contextlib.suppress(ConsoleError):
                await self.rpc.call("firmware", f"{self.started.route}.abort",
                                    {"upload_id": self.started.upload_id})


def _boundary(request: Request[Any, Any, Any]) -> str:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or not options.get("boundary"):
        raise BadRequest("send the firmware as multipart/form-data")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_IMAGE_BYTES + FORM_OVERHEAD_BYTES:
        raise TooLarge(f"a firmware image may be at most {MAX_IMAGE_BYTES} bytes")
    return str(options["boundary"])


def _form_fields(raw: dict[str, str], filename: str) -> dict[str, Any]:
    if not raw.get("version"):
        raise InvalidInput("the form needs a version")
    fields: dict[str, Any] = {"version": raw["version"].strip(), "filename": filename,
                              "release_notes": raw.get("release_notes") or None,
                              "hardware": raw.get("hardware") or None}
    for flag in ("mandatory", "force"):
        value = raw.get(flag, "false").strip().lower()
        if value not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
            raise InvalidInput(f"{flag} must be true or false")
        fields[flag] = value in ("true", "1", "yes", "on")
    return fields


async def receive_upload(request: Request[Any, Any, Any], rpc: RpcClient) -> Any:
    parser = PushMultipartParser(_boundary(request), max_segment_count=16)
    sender = _UploadSender(rpc, actor(request))
    raw: dict[str, str] = {}
    part: MultipartSegment | None = None
    value = bytearray()
    filename = "firmware.bin"
    try:
        async for received in request.stream():
            for event in parser.parse(received):
                if isinstance(event, MultipartSegment):
                    part, value = event, bytearray()
                    if part.name == "file":
                        if sender.started is not None:
                            raise InvalidInput("send one file per upload")
                        filename = part.filename or filename
                        await sender.begin(raw.get("version"))
                elif event is None:
                    if part is not None and part.name in FORM_FIELDS:
                        raw[part.name] = value.decode("utf-8", "replace")
                    part = None
                elif part is not None and part.name == "file":
                    await sender.add(bytes(event))
                elif part is not None and part.name in FORM_FIELDS:
                    value += event
                    if len(value) > MAX_FIELD_BYTES:
                        raise InvalidInput(f"form field {part.name} is too long")
        if sender.started is None:
            raise InvalidInput("the form has no file part")
        await sender.flush()
        return await sender.finish(_form_fields(raw, filename))
    except ParserError as exc:
        await sender.abort()
        raise BadRequest(f"malformed multipart body: {exc}") from None
    except BaseException:
        await sender.abort()
        raise
