"""Device configuration (owned by the commands service)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post

from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer


class ConfigController(Controller):
    path = "/api/devices/{device_id:str}/config"
    tags = ["configuration"]

    @get("/", guards=[viewer], summary="Reported and desired configuration (secrets masked)")
    async def get_config(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("commands", "config.get", payload)

    @post("/", guards=[operator], status_code=202, summary="Push a (partial) configuration")
    async def push_config(self, request: Request[Any, Any, Any], device_id: str,
                          data: dict[str, Any]) -> Any:
        payload = {"device_id": checked_device_id(device_id), "config": data,
                   "created_by": actor(request)}
        return await rpc_of(request).call("commands", "config.push", payload)

    @get("/wifi/scan", guards=[operator], summary="Scan for Wi-Fi networks on the device")
    async def wifi_scan(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id),
                   "created_by": actor(request)}
        return await rpc_of(request).call("commands", "wifi_scan", payload)
