"""Alerts (owned by the health service)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, put

from services.gateway.api.forward import actor, checked_device_id, query_dict, rpc_of
from services.gateway.auth.guard import operator, viewer

# Query spellings of a boolean; anything else is passed on as text and refused (422) by the
# service's typed decoder, naming the field.
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def alert_query(request: Request[Any, Any, Any]) -> dict[str, Any]:
    query = query_dict(request)
    if isinstance(query.get("acknowledged"), str):
        query["acknowledged"] = _BOOLEANS.get(query["acknowledged"].lower(),
                                              query["acknowledged"])
    return query


class AlertsController(Controller):
    path = "/api"
    tags = ["alerts"]

    @get("/alerts", guards=[viewer],
         summary="List alerts (device_id, alert_type, severity, state, acknowledged, from, to)")
    async def list_alerts(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "alerts.list", alert_query(request))

    @get("/devices/{device_id:str}/alerts", guards=[viewer], summary="Alerts of one device")
    async def device_alerts(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {**alert_query(request), "device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("health", "alerts.list", payload)

    @put("/alerts/{alert_id:int}/acknowledge", guards=[operator], summary="Acknowledge an alert")
    async def acknowledge(self, request: Request[Any, Any, Any], alert_id: int) -> Any:
        payload = {"alert_id": alert_id, "actor": actor(request)}
        return await rpc_of(request).call("health", "alerts.acknowledge", payload)
