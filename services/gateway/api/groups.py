"""Device groups (health service). Group commands live in commands.py, group deploys in
firmware.py (their owners' controllers)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post, put

from services.gateway.api.forward import query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer


class GroupsController(Controller):
    path = "/api/groups"
    tags = ["groups"]

    @get("/", guards=[viewer], summary="List groups")
    async def list_groups(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "groups.list", query_dict(request))

    @post("/", guards=[operator], status_code=201,
          summary="Create a group ({name, description?})")
    async def create_group(self, request: Request[Any, Any, Any], data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("health", "groups.create", data)

    @get("/{group_id:uuid}", guards=[viewer], summary="Get a group")
    async def get_group(self, request: Request[Any, Any, Any], group_id: UUID) -> Any:
        return await rpc_of(request).call("health", "groups.get", {"group_id": str(group_id)})

    @get("/{group_id:uuid}/devices", guards=[viewer], summary="Ids of the group's devices")
    async def group_devices(self, request: Request[Any, Any, Any], group_id: UUID) -> Any:
        return await rpc_of(request).call("health", "groups.members",
                                          {"group_id": str(group_id)})

    @put("/{group_id:uuid}", guards=[operator], summary="Update a group")
    async def update_group(self, request: Request[Any, Any, Any], group_id: UUID,
                           data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("health", "groups.update",
                                          {**data, "group_id": str(group_id)})

    @delete("/{group_id:uuid}", guards=[operator], status_code=204,
            summary="Delete a group (its devices are kept, group cleared)")
    async def delete_group(self, request: Request[Any, Any, Any], group_id: UUID) -> None:
        await rpc_of(request).call("health", "groups.delete", {"group_id": str(group_id)})
