"""/api/health: the gateway and every service behind it."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get

from libs.common.errors import ConsoleError
from libs.common.subjects import SERVICES
from services.gateway.api.forward import rpc_of

HEALTH_TIMEOUT_S = 2.0


class SystemController(Controller):
    path = "/api"
    tags = ["system"]

    @get("/health", summary="200 when every service answers, else 503 naming what is down")
    async def health(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        rpc = rpc_of(request)

        async def check(service: str) -> tuple[str, str]:
            try:
                await rpc.call(service, "health", timeout_s=HEALTH_TIMEOUT_S)
            except ConsoleError as exc:
                return service, exc.detail
            return service, "ok"

        results = dict(await asyncio.gather(*(check(s) for s in SERVICES)))
        try:
            await request.app.state.gateway_auth.ping()
            results["gateway"] = "ok"
        except Exception as exc:
            results["gateway"] = f"database: {type(exc).__name__}"
        down = {name: why for name, why in results.items() if why != "ok"}
        body: dict[str, Any] = {"status": "ok" if not down else "degraded", "services": results}
        if down:
            body["down"] = sorted(down)
        return Response(body, status_code=503 if down else 200)
