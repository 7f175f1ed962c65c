"""The challenges of WebAuthn ceremonies, kept server-side in Redis: single use (GETDEL), short
lived (the stored expiry on the service clock, and a Redis TTL that clears what nobody finished),
and bound to the user, the session and the kind of ceremony that asked for them, so a challenge
issued for one never completes another."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum

from redis.exceptions import RedisError
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from core.config import get_settings
from core.db import utcnow
from core.errors import BadRequest, ServiceUnavailable
from core.redis import get_redis

KEY_PREFIX = "webauthn:challenge:"
CHALLENGE_BYTES = 32


class Ceremony(StrEnum):
    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


@dataclass(frozen=True)
class Challenge:
    ceremony_id: str
    challenge: bytes
    expires_at: dt.datetime


def _expired() -> BadRequest:
    # One answer for unknown, used, expired and foreign: none of them tells anything useful.
    return BadRequest(
        "This passkey request expired or was already used; start again", code="passkey_challenge_invalid"
    )


def _unavailable() -> ServiceUnavailable:
    # Without the store there is no single-use challenge: refuse rather than skip the check.
    return ServiceUnavailable("Passkeys are unavailable right now; try again", code="passkey_unavailable")


async def issue(*, ceremony: Ceremony, user_id: uuid.UUID, session_id: uuid.UUID) -> Challenge:
    seconds = get_settings().webauthn_challenge_seconds
    challenge = Challenge(
        ceremony_id=secrets.token_urlsafe(24),
        challenge=secrets.token_bytes(CHALLENGE_BYTES),
        expires_at=utcnow() + dt.timedelta(seconds=seconds),
    )
    value = json.dumps(
        {
            "ceremony": ceremony.value,
            "user_id": str(user_id),
            "session_id": str(session_id),
            "challenge": bytes_to_base64url(challenge.challenge),
            "expires_at": challenge.expires_at.isoformat(),
        }
    )
    try:
        await get_redis().set(KEY_PREFIX + challenge.ceremony_id, value, ex=seconds)
    except RedisError as exc:
        raise _unavailable() from exc
    return challenge


async def take(ceremony_id: str, *, ceremony: Ceremony, user_id: uuid.UUID, session_id: uuid.UUID) -> bytes:
    """The challenge of ``ceremony_id``, removed in the same step (a second use finds nothing),
    or 400 ``passkey_challenge_invalid``."""
    if not ceremony_id or len(ceremony_id) > 64:
        raise _expired()
    try:
        raw = await get_redis().getdel(KEY_PREFIX + ceremony_id)
    except RedisError as exc:
        raise _unavailable() from exc
    if raw is None:
        raise _expired()
    stored = json.loads(raw)
    if (
        stored["ceremony"] != ceremony.value
        or stored["user_id"] != str(user_id)
        or stored["session_id"] != str(session_id)
        or dt.datetime.fromisoformat(stored["expires_at"]) <= utcnow()
    ):
        raise _expired()
    return base64url_to_bytes(stored["challenge"])
