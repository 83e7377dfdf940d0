"""JWT at the HTTP level: only HS256 with this console's secret, issuer, audience and expiry;
refresh reuse revokes the family, logout revokes; per-account login throttling; the configured
admin password never reaches a log."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from services.gateway.auth.tokens import AUDIENCE, ISSUER
from tests.security.helpers import assert_problem
from tests.support.console import JWT_SECRET, Console


def claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(uuid.uuid4()), "email": "x@example.com",
            "role": "admin", "iat": now, "nbf": now - 5, "exp": now + 600,
            "jti": uuid.uuid4().hex, "typ": "access"}
    base.update(override)
    return {k: v for k, v in base.items() if v is not None}


def unsigned(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


FORGED = {
    "alg none": lambda: unsigned(claims()),
    "HS512 with the right secret": lambda: jwt.encode(claims(), JWT_SECRET, algorithm="HS512"),
    "another secret": lambda: jwt.encode(claims(), "another-secret-" + "y" * 40,
                                         algorithm="HS256"),
    "wrong issuer": lambda: jwt.encode(claims(iss="someone-else"), JWT_SECRET, "HS256"),
    "wrong audience": lambda: jwt.encode(claims(aud="other-api"), JWT_SECRET, "HS256"),
    "expired": lambda: jwt.encode(claims(iat=int(time.time()) - 7200,
                                         exp=int(time.time()) - 3600), JWT_SECRET, "HS256"),
    "no expiry": lambda: jwt.encode(claims(exp=None), JWT_SECRET, "HS256"),
    "a refresh-type token": lambda: jwt.encode(claims(typ="refresh"), JWT_SECRET, "HS256"),
    "an unknown role": lambda: jwt.encode(claims(role="root"), JWT_SECRET, "HS256"),
}


@pytest.mark.parametrize("kind", sorted(FORGED))
async def test_forged_or_stale_tokens_are_401(console: Console, kind: str) -> None:
    headers = {"Authorization": f"Bearer {FORGED[kind]()}"}
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        for path in ("/api/auth/me", "/api/devices", "/api/events"):
            reply = await http.get(path, headers=headers)
            assert_problem(reply, 401)
            assert reply.headers["www-authenticate"].lower().startswith("bearer")


async def test_a_good_token_passes_the_same_door(console: Console) -> None:
    token = jwt.encode(claims(), JWT_SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        reply = await http.get("/api/devices", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200


async def _login(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password})


async def _new_user(console: Console, role: str = "viewer") -> tuple[str, str]:
    email, password = f"sec-{uuid.uuid4().hex[:8]}@example.com", "a-long-password-1"
    async with console.client("admin") as admin:
        reply = await admin.post("/api/auth/register",
                                 json={"email": email, "password": password, "role": role})
    assert reply.status_code == 201, reply.text
    return email, password


async def test_refresh_reuse_revokes_the_family_and_its_access_tokens(console: Console) -> None:
    email, password = await _new_user(console)
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        first = (await _login(http, email, password)).json()
        second = (await http.post("/api/auth/refresh",
                                  json={"refresh_token": first["refresh_token"]})).json()
        reused = await http.post("/api/auth/refresh",
                                 json={"refresh_token": first["refresh_token"]})
        assert_problem(reused, 401)
        # The thief's rotation is dead too, and so is the access token issued with it.
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": second["refresh_token"]}), 401)
        me = await http.get("/api/auth/me",
                            headers={"Authorization": f"Bearer {second['access_token']}"})
        assert_problem(me, 401)


async def test_logout_revokes_access_and_refresh(console: Console) -> None:
    email, password = await _new_user(console)
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        pair = (await _login(http, email, password)).json()
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        assert (await http.get("/api/auth/me", headers=auth)).status_code == 200
        out = await http.post("/api/auth/logout", headers=auth,
                              json={"refresh_token": pair["refresh_token"]})
        assert out.status_code in (200, 204), out.text
        assert_problem(await http.get("/api/auth/me", headers=auth), 401)
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": pair["refresh_token"]}), 401)


async def test_failed_logins_lock_the_account_then_even_the_right_password(
        console: Console) -> None:
    email, password = await _new_user(console)
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        codes = [(await _login(http, email, "wrong-password")).status_code for _ in range(6)]
        assert codes[0] == 401 and codes[-1] == 429, codes
        locked = await _login(http, email, password)
        assert_problem(locked, 429)
        assert int(locked.headers["retry-after"]) > 0


async def test_the_admin_password_never_reaches_a_log(console: Console) -> None:
    async with httpx.AsyncClient(base_url=console.base_url, timeout=10) as http:
        await _login(http, "admin@example.com", "admin-password-1")
        await _login(http, "admin@example.com", "wrong-admin-password")
    for service in ("gateway", "health", "commands"):
        text = console.log(service)
        assert "admin-password-1" not in text and "wrong-admin-password" not in text
