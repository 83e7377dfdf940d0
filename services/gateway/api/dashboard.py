"""Fleet dashboard (health service)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get

from services.gateway.api.forward import rpc_of
from services.gateway.auth.guard import viewer


class DashboardController(Controller):
    path = "/api/dashboard"
    tags = ["dashboard"]

    @get("/summary", guards=[viewer], summary="Fleet summary (total, online, offline, alerts)")
    async def summary(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "dashboard.summary")

    @get("/stats", guards=[viewer], summary="Aggregate statistics")
    async def stats(self, request: Request[Any, Any, Any]) -> Any:
        return await rpc_of(request).call("health", "dashboard.stats")
