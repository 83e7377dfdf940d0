"""Device configuration (owned by the commands service): desired and reported, secrets masked.

GET .../config/wifi/scan sends `wifi_scan` and waits (`wait_s`, default 15 s, at most 60) for
the answer: 200 with the networks when the command ended in time (`status` success; an error
or timeout answers 200 too, with `error` and no networks), else 202 with the command to follow
(`request_id`, GET .../commands/{request_id}).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from services.gateway.api.commands import FINAL_STATUSES, checked_wait_s, send_and_wait
from services.gateway.api.forward import actor, checked_device_id, rpc_of
from services.gateway.auth.guard import operator, viewer

WIFI_SCAN_WAIT_S = 15.0


class ConfigController(Controller):
    path = "/api/devices/{device_id:str}/config"
    tags = ["configuration"]

    @get("/", guards=[viewer],
         summary="Reported and desired configuration, what differs, history (secrets masked)")
    async def get_config(self, request: Request[Any, Any, Any], device_id: str) -> Any:
        payload = {"device_id": checked_device_id(device_id)}
        return await rpc_of(request).call("commands", "config.get", payload)

    @post("/", guards=[operator], status_code=HTTP_202_ACCEPTED,
          summary="Push a partial configuration (stored as desired, sent as set_config)")
    async def push_config(self, request: Request[Any, Any, Any], device_id: str,
                          data: dict[str, Any]) -> Any:
        payload = {"device_id": checked_device_id(device_id), "config": data,
                   "created_by": actor(request)}
        return await rpc_of(request).call("commands", "config.push", payload)

    @get("/wifi/scan", guards=[operator],
         summary="Scan for Wi-Fi networks: 200 with them, or 202 with the command to follow")
    async def wifi_scan(self, request: Request[Any, Any, Any],
                        device_id: str) -> Response[dict[str, Any]]:
        raw_wait = request.query_params.get("wait_s")
        wait_s = checked_wait_s(raw_wait) if raw_wait is not None else WIFI_SCAN_WAIT_S
        payload = {"device_id": checked_device_id(device_id), "command": "wifi_scan",
                   "created_by": actor(request)}
        command = await send_and_wait(request, payload, wait_s)
        if command["status"] not in FINAL_STATUSES:
            return Response(command, status_code=HTTP_202_ACCEPTED)
        response = command.get("response")
        networks = response.get("networks", []) if isinstance(response, dict) else []
        return Response({"request_id": command["request_id"], "status": command["status"],
                         "networks": networks if command["status"] == "success" else [],
                         "error": command.get("error"), "command": command},
                        status_code=HTTP_200_OK)
