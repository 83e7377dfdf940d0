"""Who may call what: one authentication middleware and one role guard.

Every path needs a bearer access token except those in PUBLIC_PATHS (login, refresh, health,
API documents, the live page's static files) and the device firmware endpoints, which accept a
device id instead (they check it themselves). The SSE endpoint also accepts the token as an
`access_token` query parameter, since browsers' EventSource cannot set headers.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from libs.common.errors import Forbidden, Unauthorized
from services.gateway.auth.tokens import ROLES, Principal, verify_access_token

PUBLIC_PATHS = re.compile(
    r"^(/api/auth/(login|refresh)|/api/health|/swagger.*|/asyncapi\.json|/metrics|/|/static/.*"
    r"|/favicon\.ico)$"
)
DEVICE_PATHS = re.compile(r"^/api/firmware/(check|download/[^/]+)$")
QUERY_TOKEN_PATHS = re.compile(r"^/api/events$")


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if QUERY_TOKEN_PATHS.match(connection.url.path):
        return connection.query_params.get("access_token") or None
    return None


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        path = connection.url.path
        token = bearer_token(connection)
        if token is None:
            if PUBLIC_PATHS.match(path) or DEVICE_PATHS.match(path):
                return AuthenticationResult(user=None, auth=None)
            raise Unauthorized("a bearer token is required")
        if PUBLIC_PATHS.match(path):
            return AuthenticationResult(user=None, auth=None)
        secret: str = connection.app.state.gateway.jwt_secret
        principal = verify_access_token(secret, token)
        if await connection.app.state.gateway_auth.is_revoked(principal):
            raise Unauthorized("token revoked")
        return AuthenticationResult(user=principal, auth=token)


def requires(role: str) -> Any:
    """Guard: the caller's role is `role` or higher (viewer < operator < admin)."""
    if role not in ROLES:
        raise ValueError(role)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        user = connection.scope.get("user")
        if not isinstance(user, Principal):
            raise Unauthorized("a bearer token is required")
        if not user.has_role(role):
            raise Forbidden(f"this needs the {role} role")

    return guard


viewer = requires("viewer")
operator = requires("operator")
admin = requires("admin")
