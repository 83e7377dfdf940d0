"""What facts tell firmware: which devices exist (and run which version), and how each device
of a rollout is doing (command answers, then the heartbeat after its reboot)."""

from __future__ import annotations

import logging
from datetime import datetime

from libs.common.messages.device import Heartbeat
from libs.common.messages.events import (
    CommandUpdated,
    DeviceDeleted,
    DeviceRegistered,
    DeviceUpdated,
    HeartbeatReceived,
)
from services.firmware.repo import Repo
from services.firmware.rollout_repo import IN_FLIGHT, RolloutRepo
from services.firmware.rollouts import RolloutService

log = logging.getLogger(__name__)

ANY_ROLLOUT = ("running", "paused", "completed", "cancelled")
# A heartbeat counts as "after the reboot" when the device booted after the success answer,
# give or take this much clock difference between device and console.
CLOCK_SLACK_S = 10.0
# Command statuses (commands service) -> the device's rollout state and the states it leaves.
COMMAND_OUTCOMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "progress": ("downloading", ("sent", "downloading")),
    "success": ("rebooting", ("sent", "downloading")),
    "error": ("failed", IN_FLIGHT),
    "timeout": ("timed_out", ("sent", "downloading")),
    "expired": ("timed_out", ("sent", "downloading")),
    "cancelled": ("failed", ("sent", "downloading")),
}


def same_version(reported: str, target: str) -> bool:
    return reported.removeprefix("v") == target.removeprefix("v")


def rebooted_since(heartbeat: Heartbeat, moment: datetime | None) -> bool:
    if moment is None or heartbeat.uptime_s is None:
        return True  # cannot tell: the device reported after the success answer
    booted_at = heartbeat.received_at - heartbeat.uptime_s
    return booted_at >= moment.timestamp() - CLOCK_SLACK_S


class Tracker:
    def __init__(self, repo: Repo, rollout_repo: RolloutRepo, rollouts: RolloutService) -> None:
        self.repo = repo
        self.rollout_repo = rollout_repo
        self.rollouts = rollouts

    async def device_registered(self, fact: DeviceRegistered | DeviceUpdated) -> None:
        hardware = fact.device.get("hardware")
        version = fact.device.get("firmware_version")
        await self.repo.upsert_device(fact.device_id,
                                      hardware if isinstance(hardware, str) else None,
                                      version if isinstance(version, str) else None)

    async def device_deleted(self, fact: DeviceDeleted) -> None:
        await self.repo.delete_device(fact.device_id)

    async def command_updated(self, fact: CommandUpdated) -> None:
        if fact.command != "ota_update":
            return
        entry = await self.rollout_repo.open_entry(fact.device_id, IN_FLIGHT, ANY_ROLLOUT)
        if entry is None or (entry.request_id not in (None, fact.request_id)):
            return  # not a rollout's command (sent by hand, or an older one)
        outcome = COMMAND_OUTCOMES.get(fact.status)
        if outcome is None and fact.progress:  # an `ack` that carries download progress
            outcome = COMMAND_OUTCOMES["progress"]
        if outcome is None:  # pending, sent, ack: the command is on its way
            if entry.request_id is None:
                await self.rollout_repo.set_request_id(entry.rollout_id, fact.device_id,
                                                       fact.request_id)
            return
        state, from_states = outcome
        error = fact.error or (f"command {fact.status}" if state != "downloading" else None)
        if state == "rebooting":
            error = None
        changed = await self.rollout_repo.set_device_state(
            entry.rollout_id, fact.device_id, state, from_states=from_states,
            progress=fact.progress, error=error, request_id=fact.request_id)
        if changed:
            await self.rollouts.device_changed(entry.rollout_id, fact.device_id, state)

    async def heartbeat(self, fact: HeartbeatReceived) -> None:
        reported = fact.heartbeat.firmware_version
        await self.repo.upsert_device(fact.device_id, None, reported)
        if reported is None:
            return
        entry = await self.rollout_repo.open_entry(fact.device_id, IN_FLIGHT, ANY_ROLLOUT)
        if entry is None:
            return
        if same_version(reported, entry.version):
            state, error = "succeeded", None
        elif entry.state == "rebooting" and rebooted_since(fact.heartbeat, entry.rebooting_at):
            state, error = "rolled_back", f"came back with {reported} after the update"
        else:
            return
        if await self.rollout_repo.set_device_state(entry.rollout_id, fact.device_id, state,
                                                    from_states=IN_FLIGHT, error=error):
            log.info("rollout %s: %s %s", entry.rollout_id, fact.device_id, state)
            await self.rollouts.device_changed(entry.rollout_id, fact.device_id, state)
