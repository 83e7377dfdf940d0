"""Commands to devices and their history (owned by the commands service)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_202_ACCEPTED

from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer


class CommandsController(Controller):
    path = "/api/devices/{device_id:str}"
    tags = ["commands"]

    @post("/command", guards=[operator], status_code=HTTP_202_ACCEPTED,
          summary="Send a command ({command, params?, ttl_s?, wait_s?})")
    async def send_command(self, request: Request[Any, Any, Any], device_id: str,
                           data: dict[str, Any]) -> Any:
        payload = {**data, "device_id": checked_device_id(device_id),
                   "created_by": actor(request)}
        return await rpc_of(request).call("commands", "send", payload)

    @get("/commands", guards=[viewer], summary="Command history (status, command, from, to)")
    async def command_history(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("commands", "list", payload)


class GroupCommandsController(Controller):
    path = "/api/groups/{group_id:uuid}"
    tags = ["commands"]

    @post("/command", guards=[operator], status_code=HTTP_202_ACCEPTED,
          summary="Send a command to every device of the group")
    async def group_command(self, request: Request[Any, Any, Any], group_id: UUID,
                            data: dict[str, Any]) -> Any:
        payload = {**data, "group_id": str(group_id), "created_by": actor(request)}
        return await rpc_of(request).call("commands", "group.send", payload)
