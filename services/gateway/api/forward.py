"""Thin translation from HTTP to a service call: the gateway never reads a service's tables.

Controllers validate what they can (path, query, body types) and call `rpc.call(service,
operation, payload)`; the service answers or raises a typed error that becomes a problem
document (404 unknown, 409 conflict, 422 invalid, 503 the service is down).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request

from libs.common.errors import NotFound
from libs.common.rpc import RpcClient
from services.gateway.auth.tokens import Principal

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def rpc_of(request: Request[Any, Any, Any]) -> RpcClient:
    client: RpcClient = request.app.state.gateway.rpc
    return client


def actor(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    return user.email if isinstance(user, Principal) else "device"


def checked_device_id(device_id: str) -> str:
    """A path device id that cannot exist is a 404 at once, and never reaches a subject."""
    if not DEVICE_ID.match(device_id):
        raise NotFound(f"no device {device_id!r}")
    return device_id


def query_dict(request: Request[Any, Any, Any], *, ints: tuple[str, ...] = ("limit", "offset"),
               lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """Query parameters as a payload: repeated ones in `lists` become lists, `ints` are parsed
    (a non-number is left as a string and refused by the service's typed decoder)."""
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getall(key)
        if key in lists:
            out[key] = [v for value in values for v in value.split(",") if v]
            continue
        value = values[-1]
        if key in ints:
            try:
                out[key] = int(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out
