"""Alerts (owned by the health service)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, put

from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer


class AlertsController(Controller):
    path = "/api"
    tags = ["alerts"]

    @get("/alerts", guards=[viewer],
         summary="List alerts (device_id, alert_type, severity, state, acknowledged, from, to)")
    async def list_alerts(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "alerts.list", query_dict(request))

    @get("/devices/{device_id:str}/alerts", guards=[viewer], summary="Alerts of one device")
    async def device_alerts(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**query_dict(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("health", "alerts.list", payload)

    @put("/alerts/{alert_id:int}/acknowledge", guards=[operator], summary="Acknowledge an alert")
    async def acknowledge(self, request: Request[Any, Any, Any], alert_id: int) -> Any:
        payload = {"alert_id": alert_id, "actor": actor(request)}
        return await rpc_of(request).call("health", "alerts.acknowledge", payload)
