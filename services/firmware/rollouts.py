"""Deployments: a rollout sends `ota_update` through the commands service, stage by stage, a few
devices at a time, and pauses itself when a stage fails too much.

Per device: queued -> sent -> downloading -> rebooting -> succeeded | failed | rolled_back |
timed_out (answers and heartbeats move it: tracking.py). The driver (`tick`, run every second by
one replica at a time) expires devices without an outcome, advances stages and fills free slots.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from libs.common.errors import Conflict, ConsoleError, NotFound, ServiceUnavailable
from libs.common.messages.events import FirmwareDownloadRecorded, FirmwareRolloutUpdated
from libs.common.paging import Page
from libs.common.rpc import RpcClient
from libs.common.subjects import Subjects
from services.firmware import staging
from services.firmware.repo import Repo
from services.firmware.rollout_repo import ACTIVE_ROLLOUT, FAILED, IN_FLIGHT, Rollout, RolloutRepo
from services.firmware.schemas import (
    DeployRequest,
    DownloadRecord,
    FirmwareVersion,
    GroupMembers,
    RolloutRef,
    RolloutsQuery,
)

log = logging.getLogger(__name__)

Publish = Callable[[str, Any], Awaitable[None]]
# The command lifecycle must not time an OTA out while a GSM download runs (minutes); the
# rollout's own device_timeout_s decides when a device has taken too long.
OTA_COMMAND_TIMEOUT_S = 1800


class RolloutService:
    def __init__(self, repo: Repo, rollouts: RolloutRepo, rpc: RpcClient, subjects: Subjects,
                 publish: Publish, public_base_url: str) -> None:
        self.repo = repo
        self.rollouts = rollouts
        self.rpc = rpc
        self.subjects = subjects
        self.publish = publish
        self.public_base_url = public_base_url

    # -- create --------------------------------------------------------------------------------
    async def deploy(self, req: DeployRequest) -> dict[str, Any]:
        version = await self.repo.get_version(req.version)
        if version is None:
            raise NotFound(f"no firmware version {req.version}")
        if not version.active:
            raise Conflict(f"firmware version {req.version} is not active")
        device_ids = await self._targets(req)
        staging.check_deploy_limits(len(device_ids), req.max_concurrent, req.failure_threshold,
                                    req.device_timeout_s)
        known = await self.repo.device_versions(device_ids)
        unknown = [d for d in device_ids if d not in known]
        if unknown:
            raise NotFound(f"unknown devices: {', '.join(unknown[:10])}")
        targets = staging.plan_stages(req.stages, req.stage_unit, len(device_ids))
        stages = staging.assign_stages(
            device_ids, staging.stage_sizes(targets, req.stage_unit, len(device_ids)))
        rows = [(d, stage, "succeeded" if known[d] == version.version else "queued", known[d])
                for d, stage in zip(device_ids, stages, strict=True)]
        rollout = await self.rollouts.create({
            "version": version.version, "stages": targets, "stage_unit": req.stage_unit,
            "max_concurrent": req.max_concurrent, "failure_threshold": req.failure_threshold,
            "device_timeout_s": req.device_timeout_s, "group_id": req.group_id,
            "created_by": req.created_by}, rows)
        log.info("rollout %s of %s to %d devices", rollout.id, version.version, len(rows))
        await self.changed(rollout)
        await self.drive(rollout, version)
        return await self.view(rollout.id, with_devices=False)

    async def _targets(self, req: DeployRequest) -> list[str]:
        device_ids = list(req.device_ids or [])
        if req.group_id is not None:
            members = await self.rpc.call("health", "groups.members",
                                          {"group_id": req.group_id}, into=GroupMembers)
            device_ids += members.device_ids
        return list(dict.fromkeys(device_ids))  # once each, in the order given

    # -- the driver ----------------------------------------------------------------------------
    async def tick(self) -> None:
        for rollout_id, device_id in await self.rollouts.expire_devices():
            await self.device_changed(rollout_id, device_id, "timed_out")
        for rollout in await self.rollouts.running():
            version = await self.repo.get_version(rollout.version)
            if version is None:  # deleted under a finished rollout's feet: nothing to send
                await self._set_state(rollout.id, "cancelled", "the version was deleted",
                                      ACTIVE_ROLLOUT)
                continue
            await self.drive(rollout, version)

    async def drive(self, rollout: Rollout, version: FirmwareVersion) -> None:
        stage = rollout.current_stage
        while True:
            stage_counts = await self.rollouts.counts(rollout.id, stage)
            failures = sum(stage_counts.get(s, 0) for s in FAILED) - (
                rollout.failure_baseline if stage == rollout.current_stage else 0)
            allowed = staging.allowed_failures(rollout.failure_threshold,
                                               sum(stage_counts.values()))
            if failures > allowed:
                await self._set_state(
                    rollout.id, "paused", f"{failures} devices failed in stage {stage + 1} "
                    f"(allowed {allowed:g}): paused for an operator", ("running",))
                return
            open_in_stage = stage_counts.get("queued", 0) + sum(
                stage_counts.get(s, 0) for s in IN_FLIGHT)
            if open_in_stage:
                break
            if stage + 1 >= len(rollout.stages):
                await self._set_state(rollout.id, "completed", None, ("running",))
                return
            stage += 1
            await self.rollouts.advance_stage(rollout.id, stage)
        counts = await self.rollouts.counts(rollout.id)
        slots = rollout.max_concurrent - sum(counts.get(s, 0) for s in IN_FLIGHT)
        if slots <= 0:
            return
        for device_id in await self.rollouts.next_queued(rollout.id, stage, slots):
            if not await self._send(rollout, version, device_id):
                return

    async def _send(self, rollout: Rollout, version: FirmwareVersion, device_id: str) -> bool:
        """Send one device its ota_update; False when the commands service is unreachable."""
        # Claimed first: answers to the command may arrive before `send` returns.
        if not await self.rollouts.claim(rollout.id, device_id):
            return True
        params = {"url": f"{self.public_base_url}/api/firmware/download/{version.version}",
                  "version": version.version, "checksum": version.checksum,
                  "size": version.file_size}
        try:
            reply = await self.rpc.call("commands", "send", {
                "device_id": device_id, "command": "ota_update", "params": params,
                "created_by": rollout.created_by or "rollout", "timeout_s": OTA_COMMAND_TIMEOUT_S})
        except ServiceUnavailable as exc:
            log.warning("rollout %s: cannot send to %s yet: %s", rollout.id, device_id, exc)
            await self.rollouts.unclaim(rollout.id, device_id)
            return False
        except ConsoleError as exc:
            await self.rollouts.set_device_state(rollout.id, device_id, "failed",
                                                 from_states=IN_FLIGHT, error=exc.detail)
            await self.device_changed(rollout.id, device_id, "failed")
            return True
        request_id = reply.get("request_id") if isinstance(reply, dict) else None
        if request_id:
            await self.rollouts.set_request_id(rollout.id, device_id, str(request_id))
        await self.device_changed(rollout.id, device_id, "sent")
        return True

    # -- operator actions ----------------------------------------------------------------------
    async def pause(self, ref: RolloutRef) -> dict[str, Any]:
        await self._set_state(ref.rollout_id, "paused", f"paused by {ref.actor or 'an operator'}",
                              ("running",), must=True)
        return await self.view(ref.rollout_id)

    async def resume(self, ref: RolloutRef) -> dict[str, Any]:
        rollout = await self._get(ref.rollout_id)
        counts = await self.rollouts.counts(rollout.id, rollout.current_stage)
        # Failures so far are accepted by the operator; new ones count against the threshold.
        resumed = await self.rollouts.resume(rollout.id, sum(counts.get(s, 0) for s in FAILED))
        if resumed is None:
            raise Conflict(f"rollout {rollout.id} is {rollout.state}, not paused")
        await self.changed(resumed)
        return await self.view(rollout.id)

    async def cancel(self, ref: RolloutRef) -> dict[str, Any]:
        await self._set_state(ref.rollout_id, "cancelled",
                              f"cancelled by {ref.actor or 'an operator'}", ACTIVE_ROLLOUT,
                              must=True)
        return await self.view(ref.rollout_id)

    async def _set_state(self, rollout_id: str, state: str, reason: str | None,
                         from_states: tuple[str, ...], must: bool = False) -> None:
        updated = await self.rollouts.set_state(rollout_id, state, reason, from_states)
        if updated is None:
            if must:
                current = await self._get(rollout_id)
                raise Conflict(f"rollout {rollout_id} is {current.state}")
            return
        log.info("rollout %s %s%s", rollout_id, state, f": {reason}" if reason else "")
        await self.changed(updated)

    async def _get(self, rollout_id: str) -> Rollout:
        try:
            rollout = await self.rollouts.get(rollout_id)
        except Exception as exc:  # not a UUID
            raise NotFound(f"no rollout {rollout_id}") from exc
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        return rollout

    # -- reading -------------------------------------------------------------------------------
    async def view(self, rollout_id: str, with_devices: bool = True) -> dict[str, Any]:
        rollout = await self._get(rollout_id)
        out: dict[str, Any] = {**_fields(rollout), "counts": await self.rollouts.counts(
            rollout.id)}
        if with_devices:
            out["devices"] = await self.rollouts.devices(rollout.id)
        return out

    async def page(self, query: RolloutsQuery) -> Page:
        items, total = await self.rollouts.page(query.state, query.version, query.limit,
                                                query.offset)
        views = [{**_fields(r), "counts": await self.rollouts.counts(r.id)} for r in items]
        return Page(items=views, total=total, limit=query.limit, offset=query.offset)

    # -- downloads and facts -------------------------------------------------------------------
    async def downloaded(self, device_id: str, version: str, bytes_downloaded: int) -> None:
        for rollout_id in await self.rollouts.add_bytes(device_id, version, bytes_downloaded):
            await self.device_changed(rollout_id, device_id, None)

    async def publish_download(self, req: DownloadRecord) -> None:
        assert req.device_id is not None
        await self.publish(self.subjects.firmware_download(req.device_id),
                           FirmwareDownloadRecorded(
                               occurred_at=time.time(), device_id=req.device_id,
                               version=req.version, range_start=req.range_start,
                               range_end=req.range_end, size_bytes=req.bytes))

    async def changed(self, rollout: Rollout, device_id: str | None = None,
                      device_state: str | None = None) -> None:
        await self.publish(self.subjects.firmware_rollout_updated(rollout.id),
                           FirmwareRolloutUpdated(
                               occurred_at=time.time(), rollout_id=rollout.id,
                               version=rollout.version, state=rollout.state,
                               counts=await self.rollouts.counts(rollout.id),
                               device_id=device_id, device_state=device_state))

    async def device_changed(self, rollout_id: str, device_id: str,
                             device_state: str | None) -> None:
        rollout = await self.rollouts.get(rollout_id)
        if rollout is not None:
            await self.changed(rollout, device_id, device_state)


def _fields(rollout: Rollout) -> dict[str, Any]:
    return {"id": rollout.id, "version": rollout.version, "state": rollout.state,
            "reason": rollout.reason, "stages": rollout.stages, "stage_unit": rollout.stage_unit,
            "current_stage": rollout.current_stage, "max_concurrent": rollout.max_concurrent,
            "failure_threshold": rollout.failure_threshold,
            "device_timeout_s": rollout.device_timeout_s, "group_id": rollout.group_id,
            "created_by": rollout.created_by, "created_at": rollout.created_at,
            "updated_at": rollout.updated_at}
