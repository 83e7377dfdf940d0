"""The command lifecycle: validate, store, queue or send, match answers, time out, expire.

    pending ──(device online)──> sent ──ack / progress──> ack ──> success | error
       │                           └──────────(no final answer in time)──────> timeout
       ├──(ttl passed while queued)──> expired
       └──(operator)──> cancelled

Every transition is stored with a timestamped event and published as a CommandUpdated fact.
A command for a device the console has never heard of is accepted and queued (202 pending):
the device may register later, and its TTL bounds the wait. Connectivity is learned from
health's facts only (DeviceStatusChanged, DeviceRegistered, DeviceDeleted), never its tables.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from libs.common.errors import Conflict, NotFound
from libs.common.messages.device import CommandAnswer, DeviceCommand
from libs.common.messages.events import CommandUpdated
from libs.common.paging import Page
from services.commands import repo as sql
from services.commands.repo import Connection, Repo
from services.commands.schemas import (
    CancelCommand,
    Command,
    GetCommand,
    GetGroupCommand,
    ListCommands,
    SendCommand,
    SendGroupCommand,
    Transition,
)
from services.commands.sealing import Sealer, mask
from services.commands.validation import validate_params

log = logging.getLogger(__name__)

# An OTA over GSM downloads 1-2 MB for minutes; each progress answer starts this again.
OTA_TIMEOUT_S = 1800
# Statuses after which an answer is late rather than a repeat of the one we applied.
ENDED_WITHOUT_ANSWER = frozenset({"timeout", "expired", "cancelled"})
MAX_ERROR_CHARS = 2000
LOCK_STRIPES = 64


class Channels(Protocol):
    async def to_device(self, conn: Connection, command: DeviceCommand, sent: CommandUpdated,
                        msg_id: str) -> None:
        """Queue the command for the device and the fact of its sending in the caller's
        transaction (an outbox): both leave after the commit, even if this process dies."""

    def flush(self) -> None:
        """Relay what was queued now rather than at the relay's next period."""

    async def command_updated(self, fact: CommandUpdated, msg_id: str) -> None: ...


class Directory(Protocol):
    async def group_members(self, group_id: str) -> list[str]: ...


SuccessListener = Callable[[Command, Any], Awaitable[None]]


class AnswerOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"
    UNKNOWN = "unknown"
    FOREIGN = "foreign"


def public(command: Command) -> dict[str, Any]:
    """A command as people see it: secrets in params masked."""
    view: dict[str, Any] = msgspec.to_builtins(command)
    view["params"] = mask(command.params)
    return view


class CommandService:
    def __init__(self, repo: Repo, channels: Channels, directory: Directory, sealer: Sealer,
                 default_timeout_s: float) -> None:
        self.repo = repo
        self.channels = channels
        self.directory = directory
        self.sealer = sealer
        self.default_timeout_s = max(1, round(default_timeout_s))
        self.on_success: list[SuccessListener] = []
        # Sends to one device are serialised so that its queue leaves in creation order.
        self._locks = [asyncio.Lock() for _ in range(LOCK_STRIPES)]

    # -- operations ----------------------------------------------------------------------------
    async def send(self, req: SendCommand) -> dict[str, Any]:
        params = validate_params(req.command, req.params)
        created = await self.repo.insert(
            None, device_id=req.device_id, request_id=new_request_id(), command=req.command,
            params=self.sealer.seal(params), created_by=req.created_by, ttl_s=req.ttl_s,
            timeout_s=self._timeout_s(req.command, req.timeout_s))
        await self._announce([created])
        if await self.repo.is_online(req.device_id):
            await self.deliver(req.device_id)
        latest = await self.repo.get(created.command.request_id)
        return public(latest or created.command)

    async def get(self, req: GetCommand) -> dict[str, Any]:
        command = await self._command_of(req.request_id, req.device_id)
        view = public(command)
        view["events"] = [msgspec.to_builtins(e) for e in await self.repo.events(req.request_id)]
        return view

    async def history(self, req: ListCommands) -> Page:
        commands, total = await self.repo.page(req)
        return Page(items=[public(c) for c in commands], total=total, limit=req.limit,
                    offset=req.offset)

    async def cancel(self, req: CancelCommand) -> dict[str, Any]:
        command = await self._command_of(req.request_id, req.device_id)
        changed = await self.repo.change(sql.CANCEL, req.request_id, {"actor": req.actor})
        if not changed:
            current = await self.repo.get(req.request_id)
            status = current.status if current else command.status
            raise Conflict(f"command {req.request_id} is {status}: only a pending command "
                           "can be cancelled")
        await self._announce(changed)
        return public(changed[0].command)

    async def group_send(self, req: SendGroupCommand) -> dict[str, Any]:
        params = validate_params(req.command, req.params)
        device_ids = await self.directory.group_members(req.group_id)
        batch_id = str(uuid.uuid4())
        sealed = self.sealer.seal(params)
        created: list[Transition] = []
        async with self.repo.pool.acquire() as conn, conn.transaction():
            for device_id in device_ids:
                created.append(await self.repo.insert(
                    conn, device_id=device_id, request_id=new_request_id(),
                    command=req.command, params=sealed, created_by=req.created_by,
                    ttl_s=req.ttl_s, timeout_s=self._timeout_s(req.command, req.timeout_s),
                    batch_id=batch_id, group_id=req.group_id))
        await self._announce(created)
        sent: set[str] = set()
        for device_id in device_ids:
            if await self.repo.is_online(device_id):
                sent |= await self.deliver(device_id)
        rows = [{"device_id": t.command.device_id, "request_id": t.command.request_id,
                 "status": "sent" if t.command.request_id in sent else t.command.status}
                for t in created]
        summary: dict[str, int] = {}
        for row in rows:
            summary[row["status"]] = summary.get(row["status"], 0) + 1
        return {"group_id": req.group_id, "batch_id": batch_id, "command": req.command,
                "commands": rows, "summary": summary}

    async def group_get(self, req: GetGroupCommand) -> dict[str, Any]:
        try:
            uuid.UUID(req.batch_id), uuid.UUID(req.group_id)
        except ValueError:
            raise NotFound(f"no group command {req.batch_id!r}") from None
        counts, command = await self.repo.batch_counts(req.batch_id, req.group_id)
        if not counts:
            raise NotFound(f"no group command {req.batch_id} for group {req.group_id}")
        return {"group_id": req.group_id, "batch_id": req.batch_id, "command": command,
                "total": sum(counts.values()), "summary": counts}

    # -- delivery ------------------------------------------------------------------------------
    async def deliver(self, device_id: str) -> set[str]:
        """Send the device's queued commands, oldest first; answer the request ids sent.
        Claimed `sent` and queued in the outbox in one transaction: a command marked sent
        always leaves (the relay publishes it after the commit, even after a crash)."""
        async with self._locks[zlib.crc32(device_id.encode()) % LOCK_STRIPES]:
            async with self.repo.pool.acquire() as conn, conn.transaction():
                claimed = await self.repo.change(sql.CLAIM_QUEUED, device_id,
                                                 {"reason": "online"}, conn=conn)
                for t in claimed:
                    c = t.command
                    await self.channels.to_device(conn, DeviceCommand(
                        device_id=device_id, request_id=c.request_id, command=c.command,
                        params=self.sealer.unseal(c.params)), fact_of(c),
                        f"{c.request_id}-{t.event_id}")
            if claimed:
                self.channels.flush()
            return {t.command.request_id for t in claimed}

    async def connectivity(self, device_id: str, online: bool | None,
                           occurred_at: float) -> None:
        """What health says of the device (None: deleted); coming online sends its queue."""
        if online is None:
            await self.repo.forget_connectivity(device_id, at(occurred_at))
        elif await self.repo.set_connectivity(device_id, online, at(occurred_at)) and online:
            await self.deliver(device_id)

    async def sweep(self) -> None:
        """Time out, expire, and send what waits for a device known online (a missed flush)."""
        timed_out = await self.repo.change(sql.TIME_OUT, {"reason": "no answer"})
        # One that never left (the bus was down all along) must not reach the device late.
        await self.repo.drop_unsent([t.command.request_id for t in timed_out])
        await self._announce(timed_out)
        await self._announce(await self.repo.change(sql.EXPIRE, {"reason": "ttl"}))
        for device_id in await self.repo.deliverable_devices():
            await self.deliver(device_id)

    # -- answers -------------------------------------------------------------------------------
    async def answer(self, a: CommandAnswer) -> AnswerOutcome:
        """Apply a device's answer; repeats, late and misdirected answers change nothing."""
        command = await self.repo.get(a.request_id)
        if command is None:
            return AnswerOutcome.UNKNOWN
        detail = {"answer": a.status, "device_id": a.device_id, "progress": a.progress,
                  "error": (a.error or "")[:MAX_ERROR_CHARS] or None}
        if command.device_id != a.device_id:
            await self.repo.record_event(a.request_id, "foreign_answer", detail)
            return AnswerOutcome.FOREIGN
        changed = await self._apply(a, detail)
        if changed:
            await self._announce(changed)
            if changed[0].command.status == "success":
                await self._succeeded(changed[0].command, a.data)
            return AnswerOutcome.APPLIED
        current = await self.repo.get(a.request_id) or command
        if current.status in ENDED_WITHOUT_ANSWER:
            await self.repo.record_event(a.request_id, "late_answer",
                                         {**detail, "data": mask(a.data)})
            return AnswerOutcome.LATE
        await self._repeat(current, a)
        return AnswerOutcome.DUPLICATE

    async def _apply(self, a: CommandAnswer, detail: dict[str, Any]) -> list[Transition]:
        if a.status == "ack":
            return await self.repo.change(sql.ACKNOWLEDGE, a.request_id, a.device_id, detail)
        if a.status == "progress":
            progress = min(100.0, max(0.0, a.progress or 0.0))
            return await self.repo.change(sql.PROGRESS, a.request_id, a.device_id, progress,
                                          detail)
        error = (a.error or "device reported an error")[:MAX_ERROR_CHARS] \
            if a.status == "error" else None
        return await self.repo.change(sql.FINISH, a.request_id, a.device_id, a.status,
                                      mask(a.data), error, detail)

    async def _repeat(self, current: Command, a: CommandAnswer) -> None:
        """A redelivered answer: publish the state again (deduplicated by the bus) and finish
        what may have been cut short, so a crash between store and publish loses nothing."""
        event_id = await self.repo.last_transition_id(current.request_id)
        if event_id is not None:
            await self.channels.command_updated(fact_of(current),
                                                f"{current.request_id}-{event_id}")
        if current.status == "success" and a.status == "success":
            await self._succeeded(current, a.data)

    async def _succeeded(self, command: Command, data: Any) -> None:
        for listener in self.on_success:
            await listener(command, data)

    # -- helpers -------------------------------------------------------------------------------
    async def _announce(self, transitions: list[Transition]) -> None:
        for t in transitions:
            await self.channels.command_updated(fact_of(t.command),
                                                f"{t.command.request_id}-{t.event_id}")

    async def _command_of(self, request_id: str, device_id: str | None) -> Command:
        command = await self.repo.get(request_id)
        if command is None or (device_id is not None and command.device_id != device_id):
            raise NotFound(f"no command {request_id!r}")
        return command

    def _timeout_s(self, command: str, asked_s: int | None) -> int:
        if asked_s is not None:
            return asked_s
        return max(OTA_TIMEOUT_S, self.default_timeout_s) if command == "ota_update" \
            else self.default_timeout_s


def fact_of(command: Command) -> CommandUpdated:
    return CommandUpdated(
        occurred_at=time.time(), device_id=command.device_id, request_id=command.request_id,
        command=command.command, status=command.status, progress=command.progress,
        response=command.response, error=command.error)


def new_request_id() -> str:
    """16 hex digits: unique enough for the fleet, short for a GSM link."""
    return secrets.token_hex(8)


def at(occurred_at: float) -> datetime:
    return datetime.fromtimestamp(occurred_at, UTC)
