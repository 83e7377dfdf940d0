"""Request and response bodies of /api/auth (msgspec Structs, so they appear in OpenAPI)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec

# Deliberately loose: one @, no spaces. `admin@localhost` (the generated first admin) is valid.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,189}$"
EMAIL = re.compile(EMAIL_PATTERN)
MIN_PASSWORD_CHARS = 8
# argon2 hashes any length, but a megabyte password is only a way to burn CPU.
MAX_PASSWORD_CHARS = 1024

Email = Annotated[str, msgspec.Meta(max_length=254, pattern=EMAIL_PATTERN,
                                    examples=["operator@example.com"])]
NewPassword = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD_CHARS,
                                          max_length=MAX_PASSWORD_CHARS)]
Role = Literal["admin", "operator", "viewer"]


class LoginRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Not validated beyond its type: a malformed e-mail is simply a failed login.
    email: Annotated[str, msgspec.Meta(max_length=254)]
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_CHARS)]


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=256)]


class LogoutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Optional body of logout: the refresh token whose family ends too."""

    refresh_token: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class RegisterRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    password: NewPassword
    role: Role


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class UserOut(msgspec.Struct, frozen=True):
    id: str
    email: str
    role: Role
    created_at: datetime


def normalize_email(raw: str) -> str:
    return raw.strip().lower()
