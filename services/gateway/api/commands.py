"""Commands to devices and their history (owned by the commands service).

`wait_s` (0 < wait_s <= 60) on POST .../command holds the request until the command ends or
`wait_s` passes, without polling: the controller subscribes to the device's CommandUpdated facts
(core NATS) before asking the commands service to send, then waits for a final status of that
request id. Either way the answer is 202 with the latest state of the command (`status` tells
whether it ended), so that a client handles one shape.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from nats.aio.msg import Msg

from libs.common.codec import decode
from libs.common.errors import InvalidInput
from libs.common.messages.events import CommandUpdated
from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer

# The command statuses after which nothing changes (console-contract.md).
FINAL_STATUSES = frozenset({"success", "error", "timeout", "expired", "cancelled"})
MAX_WAIT_S = 60.0


def checked_wait_s(raw: Any) -> float | None:
    if raw is None:
        return None
    try:
        wait_s = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput("wait_s: must be a number of seconds") from None
    if not 0 < wait_s <= MAX_WAIT_S:
        raise InvalidInput(f"wait_s: must be above 0 and at most {MAX_WAIT_S:g}")
    return wait_s


async def send_and_wait(request: Request[Any, Any, Any], payload: dict[str, Any],
                        wait_s: float | None) -> dict[str, Any]:
    """Send a command; with `wait_s`, wait for its final CommandUpdated fact (or the time)."""
    rpc = rpc_of(request)
    if wait_s is None:
        sent: dict[str, Any] = await rpc.call("commands", "send", payload)
        return sent
    gateway = request.app.state.gateway
    device_id = payload["device_id"]
    ended: set[str] = set()
    awaited: list[str] = []
    done = asyncio.Event()

    async def on_fact(msg: Msg) -> None:
        with contextlib.suppress(InvalidInput):
            fact = decode(msg.data, CommandUpdated)
            if fact.status in FINAL_STATUSES:
                ended.add(fact.request_id)
                if fact.request_id in awaited:
                    done.set()

    # Subscribed before sending: a device that answers at once cannot be missed.
    sub = await gateway.nc.subscribe(gateway.subjects.command_updated(device_id), cb=on_fact)
    try:
        command: dict[str, Any] = await rpc.call("commands", "send", payload)
        if command["status"] in FINAL_STATUSES:
            return command
        awaited.append(command["request_id"])
        if command["request_id"] in ended:
            done.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout=wait_s)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    latest: dict[str, Any] = await rpc.call(
        "commands", "get", {"request_id": command["request_id"], "device_id": device_id})
    latest.pop("events", None)
    return latest


class CommandsController(Controller):
    path = "/api/devices/{device_id:str}"
    tags = ["commands"]

    @post("/command", guards=[operator], status_code=HTTP_202_ACCEPTED,
          summary="Send a command ({command, params?, ttl_s?, timeout_s?, wait_s?})")
    async def send_command(self, request: Request[Any, Any, Any], device_id: str,
                           data: dict[str, Any]) -> Any:
        wait_s = checked_wait_s(data.pop("wait_s", None))
        payload = {**data, "device_id": checked_device_id(device_id),
                   "created_by": actor(request)}
        return await send_and_wait(request, payload, wait_s)

    @get("/commands", guards=[viewer], summary="Command history (status, command, from, to)")
    async def command_history(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("commands", "list", payload)

    @get("/commands/{request_id:str}", guards=[viewer],
         summary="One command with its timestamped status history")
    async def get_command(self, request: Request[Any, Any, Any], device_id: str,
                          request_id: str) -> Any:
        payload = {"request_id": request_id, "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("commands", "get", payload)

    @delete("/commands/{request_id:str}", guards=[operator], status_code=HTTP_200_OK,
            summary="Cancel a pending (queued) command; 409 once it was sent")
    async def cancel_command(self, request: Request[Any, Any, Any], device_id: str,
                             request_id: str) -> Any:
        payload = {"request_id": request_id, "device_id": checked_device_id(device_id),
                   "actor": actor(request)}
        return await rpc_of(request).call("commands", "cancel", payload)


class GroupCommandsController(Controller):
    path = "/api/groups/{group_id:uuid}"
    tags = ["commands"]

    @post("/command", guards=[operator], status_code=HTTP_202_ACCEPTED,
          summary="Send a command to every device of the group (answers its batch_id)")
    async def group_command(self, request: Request[Any, Any, Any], group_id: UUID,
                            data: dict[str, Any]) -> Any:
        payload = {**data, "group_id": str(group_id), "created_by": actor(request)}
        return await rpc_of(request).call("commands", "group.send", payload)

    @get("/commands/{batch_id:uuid}", guards=[viewer],
         summary="A group command's per-status counts")
    async def group_command_status(self, request: Request[Any, Any, Any], group_id: UUID,
                                   batch_id: UUID) -> Any:
        payload = {"group_id": str(group_id), "batch_id": str(batch_id)}
        return await rpc_of(request).call("commands", "group.get", payload)
