"""/api/auth: login, refresh, logout, register (admin), me."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.openapi.datastructures import ResponseSpec

from libs.common.errors import Unauthorized
from services.gateway.auth.guard import admin, viewer
from services.gateway.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    UserOut,
)
from services.gateway.auth.service import AuthService
from services.gateway.auth.tokens import Principal


def auth_of(request: Request[Any, Any, Any]) -> AuthService:
    service: AuthService = request.app.state.gateway_auth
    return service


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized("a bearer token is required")
    return user


def client_address(request: Request[Any, Any, Any]) -> str:
    # uvicorn resolves X-Forwarded-For only from trusted proxies (FORWARDED_ALLOW_IPS).
    return request.client.host if request.client else "unknown"


# Overrides the document's bearer requirement: these two take no token.
NO_TOKEN: list[dict[str, list[str]]] = [{}]


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=None, description=description,
                        media_type="application/problem+json")


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", status_code=200, summary="Log in: an access and a refresh token",
          security=NO_TOKEN,
          responses={401: _problem("wrong e-mail or password"),
                     429: _problem("too many failed logins (Retry-After)")})
    async def login(self, request: Request[Any, Any, Any], data: LoginRequest) -> TokenPair:
        return await auth_of(request).login(data.email, data.password, client_address(request))

    @post("/refresh", status_code=200, security=NO_TOKEN,
          summary="Trade a refresh token (single use) for a new pair; a reused one revokes "
                  "its family", responses={401: _problem("invalid, expired or reused token")})
    async def refresh(self, request: Request[Any, Any, Any], data: RefreshRequest) -> TokenPair:
        return await auth_of(request).refresh(data.refresh_token)

    @post("/logout", status_code=204, guards=[viewer],
          summary="Revoke this access token and its refresh family (and the given refresh "
                  "token's)")
    async def logout(self, request: Request[Any, Any, Any],
                     data: LogoutRequest | None = None) -> None:
        token = data.refresh_token if data else None
        await auth_of(request).logout(principal_of(request), token)

    @post("/register", status_code=201, guards=[admin], summary="Create a user (admin only)",
          responses={409: _problem("the e-mail exists")})
    async def register(self, request: Request[Any, Any, Any],
                       data: RegisterRequest) -> UserOut:
        return await auth_of(request).register(data.email, data.password, data.role)

    @get("/me", guards=[viewer], summary="The calling user")
    async def me(self, request: Request[Any, Any, Any]) -> UserOut:
        return await auth_of(request).me(principal_of(request))
