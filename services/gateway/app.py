"""Gateway wiring: settings, bus, database, the Litestar app and the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router

from libs.common import bus, db
from libs.common.lifecycle import retry_until_ready, run_service
from libs.common.rpc import RpcClient
from libs.common.settings import Settings
from libs.common.subjects import Subjects
from services.gateway.api.alerts import AlertsController
from services.gateway.api.commands import CommandsController
from services.gateway.api.config import ConfigController
from services.gateway.api.dashboard import DashboardController
from services.gateway.api.devices import DevicesController
from services.gateway.api.firmware import FirmwareController
from services.gateway.api.groups import GroupsController
from services.gateway.api.system import SystemController
from services.gateway.api.telemetry import TelemetryController
from services.gateway.auth.guard import AuthMiddleware
from services.gateway.auth.service import AuthService
from services.gateway.problems import EXCEPTION_HANDLERS
from services.gateway.secrets import resolve_jwt_secret
from services.gateway.state import GatewayState

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SWAGGER_ASSETS = "/swagger/assets"

CONTROLLERS: list[Any] = [
    SystemController, DevicesController, CommandsController, TelemetryController,
    FirmwareController, AlertsController, ConfigController, GroupsController, DashboardController,
]


def swagger_assets_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def create_app(state: GatewayState, auth: AuthService) -> Litestar:
    openapi = OpenAPIConfig(
        title="Acuvim console API", version="1.0.0", path="/swagger",
        render_plugins=[SwaggerRenderPlugin(
            path="/", js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js")],
        components=Components(security_schemes={"bearer": SecurityScheme(
            type="http", scheme="bearer", bearer_format="JWT")}),
        security=[{"bearer": []}],
    )
    cors = CORSConfig(allow_origins=list(state.settings.cors_origins)) \
        if state.settings.cors_origins else None
    app = Litestar(
        route_handlers=[
            *CONTROLLERS,
            create_static_files_router(path=SWAGGER_ASSETS, directories=[swagger_assets_dir()],
                                       include_in_schema=False, opt={"public": True}),
        ],
        middleware=[DefineMiddleware(AuthMiddleware, exclude_from_auth_key="public")],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi,
        cors_config=cors,
        request_max_body_size=1024 * 1024,
        debug=False,
        logging_config=None,
    )
    app.state.gateway = state
    app.state.gateway_auth = auth
    return app


@contextlib.asynccontextmanager
async def open_state(settings: Settings, stopping: asyncio.Event) -> AsyncIterator[GatewayState]:
    subjects = Subjects(settings.bus_root)
    nc = await retry_until_ready("NATS", lambda: bus.connect(settings.nats_url, "acuvim-gateway"),
                                 stopping)
    js = nc.jetstream()
    await retry_until_ready("JetStream", lambda: bus.declare_streams(js, subjects), stopping)
    pool = await retry_until_ready(
        "PostgreSQL", lambda: db.create_pool(settings.database_url, "gateway"), stopping)
    await db.migrate(pool, "gateway", MIGRATIONS)
    try:
        yield GatewayState(settings=settings, subjects=subjects, nc=nc, js=js,
                           rpc=RpcClient(nc, subjects, settings.rpc_timeout_s), pool=pool,
                           jwt_secret=resolve_jwt_secret(settings))
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), timeout=10)


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    async with open_state(settings, stopping) as state:
        auth = AuthService(state.pool)
        app = create_app(state, auth)
        server = uvicorn.Server(uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_config=None,
            access_log=False, lifespan="on", timeout_graceful_shutdown=10,
        ))
        # Signals are the service runner's: uvicorn must not take them over.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        serving = asyncio.create_task(server.serve())
        log.info("gateway on http://%s:%d (Swagger UI at /swagger)",
                 settings.http_host, settings.http_port)
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait([serving, stop], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        stop.cancel()


def run() -> None:
    run_service("gateway", main)
