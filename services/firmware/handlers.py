"""Transport of the firmware service: RPC operations and the facts it follows. No SQL here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from libs.common import bus
from libs.common.codec import decode
from libs.common.messages.events import (
    CommandUpdated,
    DeviceDeleted,
    DeviceRegistered,
    DeviceUpdated,
    HeartbeatReceived,
)
from libs.common.runtime import Runtime
from services.firmware.rollouts import RolloutService
from services.firmware.schemas import (
    CheckRequest,
    DeployRequest,
    DownloadOpen,
    DownloadRecord,
    ReadChunk,
    ReadRequest,
    RolloutRef,
    RolloutsQuery,
    UploadBegin,
    UploadChunk,
    UploadFinish,
    UploadRef,
    VersionRef,
    VersionsQuery,
    VersionUpdate,
)
from services.firmware.service import FirmwareService
from services.firmware.tracking import Tracker

FACTS_CONSUMER = "firmware-facts"
# How often the rollout driver looks for free slots, finished stages and late devices.
DRIVER_PERIOD_S = 1.0
UPLOAD_SWEEP_PERIOD_S = 60.0


def register(rt: Runtime, firmware: FirmwareService, rollouts: RolloutService,
             tracker: Tracker) -> None:
    _register_uploads(rt, firmware)
    route = rt.rpc.route

    route("versions.list", VersionsQuery)(firmware.list_versions)
    route("versions.get", VersionRef)(lambda r: firmware.get_version(r.version))
    route("versions.update", VersionUpdate)(firmware.update_version)
    route("versions.delete", VersionRef)(lambda r: firmware.delete_version(r.version))
    route("check", CheckRequest)(firmware.check)
    route("download.open", DownloadOpen)(firmware.open_download)
    route("download.record", DownloadRecord)(firmware.record_download)

    async def read(req: ReadRequest) -> ReadChunk:
        return ReadChunk(data=await firmware.read(req))

    route("read", ReadRequest)(read)
    route("deploy", DeployRequest)(rollouts.deploy)
    route("rollouts.list", RolloutsQuery)(rollouts.page)
    route("rollouts.get", RolloutRef)(lambda r: rollouts.view(r.rollout_id))
    route("rollouts.pause", RolloutRef)(rollouts.pause)
    route("rollouts.resume", RolloutRef)(rollouts.resume)
    route("rollouts.cancel", RolloutRef)(rollouts.cancel)

    rt.every("firmware-rollout-driver", DRIVER_PERIOD_S, rollouts.tick)
    _register_facts(rt, tracker)


def _register_uploads(rt: Runtime, firmware: FirmwareService) -> None:
    uploads = firmware.uploads
    prefix = firmware.upload_route

    async def chunk(req: UploadChunk) -> dict[str, int]:
        return {"size": uploads.add_chunk(req.upload_id, req.seq, req.data)}

    async def abort(req: UploadRef) -> None:
        uploads.abort(req.upload_id)

    async def expire() -> None:
        uploads.expire()

    rt.rpc.route("upload.begin", UploadBegin)(firmware.begin_upload)
    rt.rpc.route(f"{prefix}.chunk", UploadChunk)(chunk)
    rt.rpc.route(f"{prefix}.finish", UploadFinish)(firmware.finish_upload)
    rt.rpc.route(f"{prefix}.abort", UploadRef)(abort)
    rt.every("firmware-upload-sweep", UPLOAD_SWEEP_PERIOD_S, expire)


def _register_facts(rt: Runtime, tracker: Tracker) -> None:
    s = rt.subjects
    routes: dict[str, Callable[[bytes], Awaitable[None]]] = {
        s.device_registered("*"): lambda d: tracker.device_registered(
            decode(d, DeviceRegistered)),
        s.device_updated("*"): lambda d: tracker.device_registered(decode(d, DeviceUpdated)),
        s.device_deleted("*"): lambda d: tracker.device_deleted(decode(d, DeviceDeleted)),
        s.heartbeat_received("*"): lambda d: tracker.heartbeat(decode(d, HeartbeatReceived)),
        s.command_updated("*"): lambda d: tracker.command_updated(decode(d, CommandUpdated)),
    }
    by_prefix = {pattern[:-1]: handle for pattern, handle in routes.items()}

    async def handle(msg: Msg) -> None:
        handler = by_prefix.get(msg.subject.rsplit(".", 1)[0] + ".")
        if handler is not None:
            await handler(msg.data)

    rt.consume(stream=s.events_stream, durable=FACTS_CONSUMER, filter_subjects=list(routes),
               handler=bus.each(handle))


