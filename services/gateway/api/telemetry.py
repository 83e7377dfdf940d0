"""Telemetry of one device (owned by the telemetry service)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from services.gateway.api.forward import checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import viewer


class TelemetryController(Controller):
    path = "/api/devices/{device_id:str}/telemetry"
    tags = ["telemetry"]

    @get("/", guards=[viewer], summary="Latest reading and when it arrived")
    async def latest(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("telemetry", "latest", payload)

    @get("/history", guards=[viewer],
         summary="Readings in a range (from, to, fields), or buckets with interval")
    async def history(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("telemetry", "history", payload)

    @get("/export", guards=[viewer], summary="CSV export of a range (streamed)")
    async def export(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("telemetry", "export", payload)
