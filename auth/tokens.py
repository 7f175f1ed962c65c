"""Access tokens (short-lived JWT) and opaque refresh tokens.

JWTs are HS256 with a key id for rotation; decoding allows only HS256 and checks ``exp``, ``aud``
and ``iss``. An access token names its session and the user's token version, and the request
dependency checks both against the database, so revocation does not wait for ``exp``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from core.clock import utcnow
from core.config import get_settings
from core.errors import Unauthorized

ALGORITHMS = ["HS256"]
REFRESH_PREFIX = "chr_"
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_version: int
    expires_at: dt.datetime


def issue_access_token(
    *, user_id: uuid.UUID, session_id: uuid.UUID, token_version: int, now: dt.datetime
) -> tuple[str, int]:
    settings = get_settings()
    ttl = settings.access_token_ttl_seconds
    payload: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "sid": str(session_id),
        "ver": token_version,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl,
        "jti": uuid.uuid4().hex,
    }
    kid = settings.jwt_active_kid
    token = jwt.encode(payload, settings.jwt_keyring()[kid], algorithm="HS256", headers={"kid": kid})
    return token, ttl


def decode_access_token(token: str) -> AccessClaims:
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        keyring = settings.jwt_keyring()
        if not isinstance(kid, str) or kid not in keyring:
            raise Unauthorized("Unknown token key", code="invalid_token")
        payload = jwt.decode(
            token,
            keyring[kid],
            algorithms=ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            # Expiry is checked below against the service clock (core.clock), not time.time().
            options={
                "require": ["exp", "iat", "sub", "aud", "iss"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
        expires_at = dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC)
        if expires_at + dt.timedelta(seconds=LEEWAY_SECONDS) <= utcnow():
            raise Unauthorized("Access token expired", code="token_expired")
        return AccessClaims(
            user_id=uuid.UUID(str(payload["sub"])),
            session_id=uuid.UUID(str(payload["sid"])),
            token_version=int(payload["ver"]),
            expires_at=expires_at,
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("Invalid access token", code="invalid_token") from exc


def new_refresh_token() -> str:
    return REFRESH_PREFIX + secrets.token_urlsafe(32)
