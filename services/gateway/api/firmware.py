"""Firmware versions, device update checks and downloads, deployments (firmware service)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, delete, get, post

from services.gateway.api.forward import actor, query_dict, rpc_of
from services.gateway.auth.guard import admin, operator, viewer


class FirmwareController(Controller):
    path = "/api/firmware"
    tags = ["firmware"]

    @get("/", guards=[viewer], summary="List firmware versions")
    async def list_versions(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("firmware", "versions.list", query_dict(request))

    @post("/", guards=[admin], summary="Upload a firmware version (multipart)")
    async def upload(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("firmware", "upload", {"actor": actor(request)})

    @get("/check", summary="Check for an update (used by devices)")
    async def check(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("firmware", "check", query_dict(request))

    @get("/download/{version:str}", summary="Download a firmware binary (used by devices)")
    async def download(self, request: Request[Any, Any, Any], version: str) -> Any:
        return await rpc_of(request).call("firmware", "download", {"version": version})

    @post("/deploy", guards=[operator], status_code=202,
          summary="Deploy a version to devices ({version, device_ids})")
    async def deploy(self, request: Request[Any, Any, Any], data: dict[str, Any]) -> Any:
        return await rpc_of(request).call("firmware", "deploy",
                                          {**data, "created_by": actor(request)})

    @get("/{version:str}", guards=[viewer], summary="Get a firmware version")
    async def get_version(self, request: Request[Any, Any, Any], version: str) -> Any:
        return await rpc_of(request).call("firmware", "versions.get", {"version": version})

    @delete("/{version:str}", guards=[admin], status_code=204, summary="Delete a version")
    async def delete_version(self, request: Request[Any, Any, Any], version: str) -> None:
        await rpc_of(request).call("firmware", "versions.delete",
                                   {"version": version, "actor": actor(request)})


class GroupDeployController(Controller):
    path = "/api/groups/{group_id:uuid}"
    tags = ["firmware"]

    @post("/deploy", guards=[operator], status_code=202,
          summary="Deploy firmware to every device of the group")
    async def group_deploy(self, request: Request[Any, Any, Any], group_id: UUID,
                           data: dict[str, Any]) -> Any:
        payload = {**data, "group_id": str(group_id), "created_by": actor(request)}
        return await rpc_of(request).call("firmware", "deploy", payload)
