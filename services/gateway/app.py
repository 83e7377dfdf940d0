"""Gateway wiring: settings, bus, database, the Litestar app and the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import prometheus_client
import uvicorn
from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

from libs.common import bus, db
from libs.common.lifecycle import retry_until_ready, run_service
from libs.common.rpc import RpcClient
from libs.common.settings import Settings
from libs.common.subjects import Subjects
from services.gateway.api.alerts import AlertsController
from services.gateway.api.auth import AuthController
from services.gateway.api.commands import CommandsController, GroupCommandsController
from services.gateway.api.config import ConfigController
from services.gateway.api.dashboard import DashboardController
from services.gateway.api.devices import DevicesController
from services.gateway.api.events import EventsController, LivePageController
from services.gateway.api.firmware import FirmwareController, GroupDeployController
from services.gateway.api.groups import GroupsController
from services.gateway.api.notifications import NotificationsController
from services.gateway.api.system import SystemController
from services.gateway.api.telemetry import TelemetryController
from services.gateway.auth.bootstrap import ensure_first_admin
from services.gateway.auth.guard import AuthMiddleware
from services.gateway.auth.service import AuthService
from services.gateway.auth.throttle import DeviceRateLimit
from services.gateway.events.registry import close_live_events
from services.gateway.problems import EXCEPTION_HANDLERS
from services.gateway.secrets import resolve_jwt_secret
from services.gateway.state import GatewayState

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SWAGGER_ASSETS = "/swagger/assets"
MAX_BODY_BYTES = 1024 * 1024
PURGE_EVERY_S = 3600.0

CONTROLLERS: list[Any] = [
    AuthController, SystemController, DevicesController, CommandsController, TelemetryController,
    FirmwareController, AlertsController, ConfigController, GroupsController, DashboardController,
    GroupCommandsController, GroupDeployController, EventsController, LivePageController,
    NotificationsController,
]


def swagger_assets_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


# Swagger UI from this server only (no CDN, works offline) and without inline script, so the
# Content-Security-Policy can forbid inline scripts everywhere.
SWAGGER_HTML = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Acuvim console API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="{SWAGGER_ASSETS}/favicon-32x32.png">
<link rel="stylesheet" href="{SWAGGER_ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER_ASSETS}/swagger-ui-bundle.js"></script>
<script src="{SWAGGER_ASSETS}/swagger-ui-standalone-preset.js"></script>
<script src="/swagger/init.js"></script></body></html>
""".encode()
SWAGGER_INIT_JS = """window.ui = SwaggerUIBundle({
  url: "/swagger/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  validatorUrl: null, persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # Same-origin scripts, styles, API calls and event streams (Swagger UI, a live page);
    # Swagger UI sets inline styles and uses data: images.
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
     b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
]
HTTP_RESPONSES = prometheus_client.Counter(
    "acuvim_gateway_http_responses_total", "HTTP responses of the gateway", ["status"])


class LocalSwaggerUI(SwaggerRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return SWAGGER_HTML

    def receive_router(self, router: Router) -> None:
        @get("/init.js", include_in_schema=False, media_type="text/javascript",
             sync_to_thread=False)
        def swagger_init() -> str:
            return SWAGGER_INIT_JS

        router.register(swagger_init)


@get("/metrics", include_in_schema=False, opt={"public": True}, sync_to_thread=False)
def metrics() -> Response[bytes]:
    return Response(prometheus_client.generate_latest(),
                    media_type=prometheus_client.CONTENT_TYPE_LATEST)


async def security_headers(message: Message, scope: Scope) -> None:
    """Before every response start (errors and static files included)."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
        message["headers"] = headers
        HTTP_RESPONSES.labels(status=str(message["status"])).inc()


def create_app(state: GatewayState, auth: AuthService) -> Litestar:
    openapi = OpenAPIConfig(
        title="Acuvim console API", version="1.0.0", path="/swagger",
        render_plugins=[LocalSwaggerUI(path="/")],
        components=Components(security_schemes={"bearer": SecurityScheme(
            type="http", scheme="bearer", bearer_format="JWT")}),
        security=[{"bearer": []}],
    )
    cors = CORSConfig(allow_origins=list(state.settings.cors_origins)) \
        if state.settings.cors_origins else None
    app = Litestar(
        route_handlers=[
            *CONTROLLERS,
            metrics,
            create_static_files_router(path=SWAGGER_ASSETS, directories=[swagger_assets_dir()],
                                       include_in_schema=False, opt={"public": True}),
        ],
        middleware=[DefineMiddleware(AuthMiddleware, exclude_from_auth_key="public")],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[security_headers],
        openapi_config=openapi,
        cors_config=cors,
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
        logging_config=None,
    )
    app.state.gateway = state
    app.state.gateway_auth = auth
    app.state.device_rate_limit = DeviceRateLimit()
    return app


@contextlib.asynccontextmanager
async def open_state(settings: Settings, stopping: asyncio.Event) -> AsyncIterator[GatewayState]:
    subjects = Subjects(settings.bus_root)
    nc = await retry_until_ready("NATS", lambda: bus.connect(settings.nats_url, "acuvim-gateway"),
                                 stopping)
    js = nc.jetstream()
    await retry_until_ready("JetStream", lambda: bus.declare_streams(
            js, subjects, settings.jetstream_replicas,
            device_max_age_s=settings.device_in_max_age_s,
            device_max_bytes=settings.device_in_max_bytes), stopping)
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
        await ensure_first_admin(state.pool, settings)
        auth = AuthService(state.pool, jwt_secret=state.jwt_secret,
                           access_ttl_s=settings.access_token_ttl_s,
                           refresh_ttl_s=settings.refresh_token_ttl_s)
        housekeeping = asyncio.create_task(purge_periodically(auth, stopping))
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
        await close_live_events(app)
        await serving
        stop.cancel()
        housekeeping.cancel()


async def purge_periodically(auth: AuthService, stopping: asyncio.Event) -> None:
    while not stopping.is_set():
        try:
            await auth.purge_expired()
        except Exception as exc:  # housekeeping only: try again next time
            log.warning("token purge failed (%s: %s)", type(exc).__name__, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=PURGE_EVERY_S)


def run() -> None:
    run_service("gateway", main)
