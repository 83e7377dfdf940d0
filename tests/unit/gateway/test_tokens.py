"""Access tokens: only HS256 with our issuer and audience, unexpired, typed; role ordering."""

from __future__ import annotations

import time

import jwt
import pytest

from libs.common.errors import Unauthorized
from services.gateway.auth.tokens import (
    AUDIENCE,
    ISSUER,
    Principal,
    issue_access_token,
    verify_access_token,
)

SECRET = "unit-test-secret-" + "y" * 48


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "email": "u@example.com",
        "role": "operator", "iat": now, "nbf": now - 5, "exp": now + 600, "jti": "j1",
        "typ": "access",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def refused(token: str, detail: str = "invalid token") -> None:
    with pytest.raises(Unauthorized) as caught:
        verify_access_token(SECRET, token)
    assert caught.value.detail == detail


def test_an_issued_token_verifies_to_its_principal() -> None:
    token, expires = issue_access_token(SECRET, user_id="u1", email="a@b.c", role="viewer",
                                        ttl_s=60, family_id="fam-1")
    who = verify_access_token(SECRET, token)
    assert (who.user_id, who.email, who.role, who.family_id) == ("u1", "a@b.c", "viewer",
                                                                 "fam-1")
    assert who.expires_at == int(expires)
    assert who.token_id


def test_token_ids_are_unique() -> None:
    first, _ = issue_access_token(SECRET, user_id="u", email="e", role="admin", ttl_s=60)
    second, _ = issue_access_token(SECRET, user_id="u", email="e", role="admin", ttl_s=60)
    assert verify_access_token(SECRET, first).token_id != (
        verify_access_token(SECRET, second).token_id)


def test_an_expired_token_is_refused() -> None:
    token, _ = issue_access_token(SECRET, user_id="u", email="e", role="admin", ttl_s=60,
                                  now=time.time() - 3600)
    refused(token, "token expired")


@pytest.mark.parametrize("override", [{"aud": "someone-else"}, {"iss": "evil"},
                                      {"typ": "refresh"}, {"role": "root"}, {"jti": None},
                                      {"exp": None}, {"sub": None}])
def test_wrong_or_missing_claims_are_refused(override: dict[str, object]) -> None:
    refused(jwt.encode(claims(**override), SECRET, algorithm="HS256"))


def test_a_token_signed_with_another_secret_is_refused() -> None:
    refused(jwt.encode(claims(), "another-secret-" + "z" * 32, algorithm="HS256"))


def test_alg_none_is_refused() -> None:
    refused(jwt.encode(claims(), None, algorithm="none"))  # type: ignore[arg-type]


def test_hs512_with_the_right_secret_is_refused() -> None:
    refused(jwt.encode(claims(), SECRET, algorithm="HS512"))


def test_garbage_is_refused() -> None:
    refused("not.a.token")
    refused("")


@pytest.mark.parametrize(("role", "needed", "allowed"), [
    ("viewer", "viewer", True), ("viewer", "operator", False), ("viewer", "admin", False),
    ("operator", "viewer", True), ("operator", "operator", True), ("operator", "admin", False),
    ("admin", "viewer", True), ("admin", "operator", True), ("admin", "admin", True),
])
def test_roles_are_ordered_viewer_operator_admin(role: str, needed: str, allowed: bool) -> None:
    who = Principal(user_id="u", email="e", role=role, token_id="t", expires_at=0)
    assert who.has_role(needed) is allowed
