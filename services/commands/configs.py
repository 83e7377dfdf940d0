"""Device configuration: desired (what operators pushed) and reported (what the device said).

A push validates a partial configuration, merges it into the desired one and sends it as a
`set_config` command; its success makes those settings reported. A `get_config` answer replaces
the reported configuration. Passwords are sealed at rest and masked in every answer, history
entry and ConfigReported fact; they travel in clear only to the device (set_config params).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from libs.common.messages.events import ConfigReported
from services.commands.repo import Repo
from services.commands.schemas import Command, GetConfig, PushConfig, SendCommand
from services.commands.sealing import Sealer, differences, mask, merge
from services.commands.service import CommandService
from services.commands.validation import validate_config


class ConfigChannel(Protocol):
    async def config_reported(self, fact: ConfigReported, msg_id: str) -> None: ...


class ConfigService:
    def __init__(self, repo: Repo, sealer: Sealer, channel: ConfigChannel,
                 commands: CommandService) -> None:
        self.repo = repo
        self.sealer = sealer
        self.channel = channel
        self.commands = commands
        commands.on_success.append(self.command_succeeded)

    async def get(self, req: GetConfig) -> dict[str, Any]:
        row = await self.repo.config(req.device_id)
        desired: dict[str, Any] = self.sealer.unseal(row["desired"]) if row else {}
        reported: dict[str, Any] | None = self.sealer.unseal(row["reported"]) if row else None
        return {
            "device_id": req.device_id,
            "desired": mask(desired),
            "reported": mask(reported),
            "desired_at": row["desired_at"] if row else None,
            "reported_at": row["reported_at"] if row else None,
            "differs": differences(desired, reported),
            "pending_request_id": await self.repo.open_set_config(req.device_id),
            "history": await self.repo.history(req.device_id, req.history_limit),
        }

    async def push(self, req: PushConfig) -> dict[str, Any]:
        change = validate_config(req.config)
        row = await self.repo.config(req.device_id)
        desired = merge(row["desired"] if row else {}, self.sealer.seal(change))
        await self.repo.set_desired(req.device_id, desired)
        command = await self.commands.send(SendCommand(
            device_id=req.device_id, command="set_config", params=change,
            created_by=req.created_by, ttl_s=req.ttl_s))
        await self.repo.add_history(None, req.device_id, "desired", mask(change),
                                    command["request_id"], req.created_by)
        return {"device_id": req.device_id, "desired": mask(self.sealer.unseal(desired)),
                "request_id": command["request_id"], "command": command}

    async def command_succeeded(self, command: Command, data: Any) -> None:
        if command.command == "set_config":
            row = await self.repo.config(command.device_id)
            await self._reported(command, merge(row["reported"] if row else {}, command.params))
        elif command.command == "get_config" and isinstance(data, dict):
            await self._reported(command, self.sealer.seal(data))

    async def _reported(self, command: Command, sealed: dict[str, Any]) -> None:
        await self.repo.set_reported(command.device_id, sealed)
        masked = mask(sealed)
        await self.repo.add_history(None, command.device_id, "reported", masked,
                                    command.request_id, None)
        await self.channel.config_reported(
            ConfigReported(occurred_at=time.time(), device_id=command.device_id, config=masked),
            f"config-{command.request_id}")
