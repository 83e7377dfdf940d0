"""Auth against a real gateway and PostgreSQL: login, refresh rotation and reuse, logout,
register, me, deactivated users, throttling."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.integration.gateway.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    assert_problem,
    bearer,
    login,
    some_address,
)
from tests.support.console import Console, free_port
from tests.support.waiting import eventually


def new_email(role: str = "viewer") -> str:
    return f"{role}-{uuid.uuid4().hex[:8]}@example.com"


async def register(http: httpx.AsyncClient, console: Console, email: str, password: str,
                   role: str) -> httpx.Response:
    return await http.post("/api/auth/register", headers=bearer(console.token("admin")),
                           json={"email": email, "password": password, "role": role})


async def test_login_answers_a_token_pair_for_the_first_admin(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        reply = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert reply.status_code == 200, reply.text
        pair = reply.json()
        assert pair["token_type"] == "bearer"
        assert pair["expires_in"] == 86400
        assert pair["refresh_token"] and pair["access_token"].count(".") == 2
        me = await http.get("/api/auth/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["email"] == ADMIN_EMAIL
    assert me.json()["role"] == "admin"
    assert set(me.json()) == {"id", "email", "role", "created_at"}


async def test_bad_logins_are_401_with_one_message(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        wrong_password = await login(http, ADMIN_EMAIL, "not-the-password")
        unknown_user = await login(http, new_email(), "whatever-password")
        no_body = await http.post("/api/auth/login")
    # Same answer whether the account exists or not: no user enumeration.
    assert assert_problem(wrong_password, 401)["detail"] == (
        assert_problem(unknown_user, 401)["detail"])
    assert no_body.status_code in (400, 422)


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        first = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).json()
        second_reply = await http.post("/api/auth/refresh",
                                       json={"refresh_token": first["refresh_token"]})
        assert second_reply.status_code == 200, second_reply.text
        second = second_reply.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert (await http.get("/api/auth/me", headers=bearer(second["access_token"]))
                ).status_code == 200

        reused = await http.post("/api/auth/refresh",
                                 json={"refresh_token": first["refresh_token"]})
        assert_problem(reused, 401)
        # The whole family is gone: the newest refresh token and its access token too.
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": second["refresh_token"]}), 401)
        assert_problem(await http.get("/api/auth/me", headers=bearer(second["access_token"])),
                       401)
        # Another session of the same user is untouched.
        other = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).json()
        assert (await http.post("/api/auth/refresh",
                                json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_unknown_refresh_token_is_401(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        reply = await http.post("/api/auth/refresh", json={"refresh_token": "nope"})
    assert_problem(reply, 401)


async def test_logout_revokes_the_access_token_and_its_refresh_family(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        pair = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).json()
        out = await http.post("/api/auth/logout", headers=bearer(pair["access_token"]),
                              json={"refresh_token": pair["refresh_token"]})
        assert out.status_code == 204, out.text
        assert_problem(await http.get("/api/auth/me", headers=bearer(pair["access_token"])), 401)
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": pair["refresh_token"]}), 401)


async def test_logout_without_a_body_revokes_the_session_of_the_token(gateway: Console) -> None:
    async with gateway.client(role=None) as http:
        pair = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).json()
        out = await http.post("/api/auth/logout", headers=bearer(pair["access_token"]))
        assert out.status_code == 204, out.text
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": pair["refresh_token"]}), 401)
        assert_problem(await http.post("/api/auth/logout"), 401)


async def test_minted_tokens_work_without_a_user_row(gateway: Console) -> None:
    """Access tokens are stateless: any valid signed token is accepted (the tests rely on it)."""
    async with gateway.client("viewer") as http:
        reply = await http.get("/api/auth/me")
    assert_problem(reply, 404)  # authenticated, but no such user in the database


async def test_register_is_admin_only_and_the_new_user_logs_in(gateway: Console) -> None:
    email, password = new_email("operator"), "operator-password"
    async with gateway.client(role=None) as http:
        created = await register(http, gateway, email, password, "operator")
        assert created.status_code == 201, created.text
        assert created.json()["email"] == email and created.json()["role"] == "operator"
        pair = (await login(http, email.upper(), password)).json()
        me = (await http.get("/api/auth/me", headers=bearer(pair["access_token"]))).json()
        assert me == created.json()
        body = {"email": new_email(), "password": "long-enough", "role": "viewer"}
        for role in ("operator", "viewer"):
            denied = await http.post("/api/auth/register", json=body,
                                     headers=bearer(gateway.token(role)))
            assert_problem(denied, 403)
        assert_problem(await http.post("/api/auth/register", json=body), 401)


async def test_register_refuses_duplicates_and_bad_input(gateway: Console) -> None:
    email = new_email()
    async with gateway.client(role=None) as http:
        assert (await register(http, gateway, email, "password-1", "viewer")).status_code == 201
        assert_problem(await register(http, gateway, email.upper(), "password-2", "viewer"), 409)
        assert_problem(await register(http, gateway, "not-an-email", "password-1", "viewer"), 422)
        assert_problem(await register(http, gateway, new_email(), "short", "viewer"), 422)
        assert_problem(await register(http, gateway, new_email(), "password-1", "root"), 422)


async def test_a_deactivated_user_can_neither_log_in_nor_refresh(gateway: Console) -> None:
    email, password = new_email(), "viewer-password"
    async with gateway.client(role=None) as http:
        assert (await register(http, gateway, email, password, "viewer")).status_code == 201
        pair = (await login(http, email, password)).json()
        conn = await asyncpg.connect(gateway.database_url)
        try:
            await conn.execute("UPDATE gateway.users SET active = false WHERE email = $1", email)
        finally:
            await conn.close()
        assert_problem(await login(http, email, password), 401)
        assert_problem(await http.post("/api/auth/refresh",
                                       json={"refresh_token": pair["refresh_token"]}), 401)


async def test_five_failures_lock_the_account_with_retry_after(gateway: Console) -> None:
    email, password = new_email(), "viewer-password"
    async with gateway.client(role=None) as http:
        assert (await register(http, gateway, email, password, "viewer")).status_code == 201
        for _ in range(5):
            assert_problem(await login(http, email, "wrong-password"), 401)
        locked = await login(http, email, password)  # even the right password, from anywhere
        assert_problem(locked, 429)
        assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
        assert (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_a_correct_login_resets_the_account_counter(gateway: Console) -> None:
    email, password = new_email(), "viewer-password"
    async with gateway.client(role=None) as http:
        assert (await register(http, gateway, email, password, "viewer")).status_code == 201
        for _ in range(4):
            assert_problem(await login(http, email, "wrong-password"), 401)
        assert (await login(http, email, password)).status_code == 200
        for _ in range(4):
            assert_problem(await login(http, email, "wrong-password"), 401)
        assert (await login(http, email, password)).status_code == 200


async def test_twenty_failures_lock_the_client_address(gateway: Console) -> None:
    address = some_address()
    async with gateway.client(role=None) as http:
        for _ in range(20):
            assert_problem(await login(http, new_email(), "wrong-password", address), 401)
        locked = await login(http, ADMIN_EMAIL, ADMIN_PASSWORD, address)
        assert_problem(locked, 429)
        assert int(locked.headers["Retry-After"]) > 0
        assert (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_revocation_by_one_gateway_is_seen_by_another(gateway: Console) -> None:
    """Two replicas share the database: a logout on one is refused by the other once its
    revocation list reloads (within seconds)."""
    other_port = free_port()
    gateway.start("gateway", ACUVIM_HTTP_PORT=str(other_port))
    second = gateway.processes["gateway"][-1]
    try:
        async with gateway.client(role=None) as http, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{other_port}", timeout=5) as other:
            pair = (await login(http, ADMIN_EMAIL, ADMIN_PASSWORD)).json()

            async def accepted() -> bool:
                try:
                    reply = await other.get("/api/auth/me", headers=bearer(pair["access_token"]))
                except httpx.TransportError:
                    return False  # still starting
                return reply.status_code == 200

            await eventually(accepted, timeout_s=20, what="second gateway up")
            assert (await http.post("/api/auth/logout", headers=bearer(pair["access_token"]))
                    ).status_code == 204

            async def refused() -> bool:
                reply = await other.get("/api/auth/me", headers=bearer(pair["access_token"]))
                return reply.status_code == 401

            await eventually(refused, timeout_s=15, what="logout seen by the other gateway")
    finally:
        gateway.processes["gateway"].remove(second)
        second.terminate()
        second.wait(timeout=20)
