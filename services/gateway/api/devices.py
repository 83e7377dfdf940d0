"""/api/devices: the fleet (owned by the health service) and its command history."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, put

from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer


class DevicesController(Controller):
    path = "/api/devices"
    tags = ["devices"]

    @get("/", guards=[viewer], summary="List devices (filter by status, group_id, tag, q, "
         "firmware_version; paged)")
    async def list_devices(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "devices.list", query_dict(request))

    @get("/{device_id:str}", guards=[viewer], summary="Get a device")
    async def get_device(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("health", "devices.get", payload)

    @put("/{device_id:str}", guards=[operator], summary="Update name, description, group, tags")
    async def update_device(self, request: Request[Any, Any, Any], device_id: str,
                            data: dict[str, Any]) -> Any:
        payload = {**data, "device_id": checked_device_id(device_id), "actor": actor(request)}
        return await rpc_of(request).call("health", "devices.update", payload)

    @delete("/{device_id:str}", guards=[operator], status_code=204, summary="Remove a device")
    async def delete_device(self, request: Request[Any, Any, Any], device_id: str) -> None:
        payload = {"device_id": checked_device_id(device_id), "actor": actor(request)}
        await rpc_of(request).call("health", "devices.delete", payload)

    @get("/{device_id:str}/status", guards=[viewer], summary="Current status and health details")
    async def device_status(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("health", "devices.status", payload)
