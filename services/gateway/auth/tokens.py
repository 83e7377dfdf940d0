"""Access tokens: HS256 JWTs with issuer, audience, expiry, subject, role and a unique id.

Only the configured algorithm is accepted (no `none`, no switch to another algorithm).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import msgspec

from libs.common.errors import Unauthorized

ALGORITHM = "HS256"
ISSUER = "acuvim-console"
AUDIENCE = "acuvim-api"
ROLES = ("viewer", "operator", "admin")


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: the user id, e-mail and role from a verified access token."""

    user_id: str
    email: str
    role: str
    token_id: str
    expires_at: float
    # The refresh-token family the token was issued from (login/refresh); None for tokens minted
    # elsewhere (tests). Revoking the family (logout, reuse detected) revokes the token too.
    family_id: str | None = None

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def issue_access_token(secret: str, *, user_id: str, email: str, role: str,
                       ttl_s: int, now: float | None = None,
                       family_id: str | None = None) -> tuple[str, float]:
    issued = time.time() if now is None else now
    expires = issued + ttl_s
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": user_id, "email": email, "role": role,
        "iat": int(issued), "nbf": int(issued) - 5, "exp": int(expires),
        "jti": uuid.uuid4().hex, "typ": "access",
    }
    if family_id is not None:
        claims["fam"] = family_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM), expires


def verify_access_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None
    if claims.get("typ") != "access" or claims.get("role") not in ROLES:
        raise Unauthorized("invalid token")
    return Principal(user_id=str(claims["sub"]), email=str(claims.get("email", "")),
                     role=str(claims["role"]), token_id=str(claims["jti"]),
                     expires_at=float(claims["exp"]),
                     family_id=str(claims["fam"]) if claims.get("fam") else None)
