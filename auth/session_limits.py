"""How long a sign-in session may live, per role (docs/security.md "Session lifetimes").

Staff sessions follow NIST SP 800-63B AAL2: the session ends 12 hours after sign-in whatever the
activity, and after 30 minutes without a request; the holder signs in again with password and
TOTP. Readers' devices (``member``) are not staff sessions: they keep the long refresh-token
lifetime and no idle limit. Every number is a setting, overridable per role.

Both limits are computed from columns every session already has: ``created_at`` (absolute),
``last_seen_at`` (idle; the per-request check moves it forward at most once a minute, so a
session ends at most a minute early, never late) and ``expires_at`` (set at sign-in from the
role's limit). Lowering a setting therefore shortens sessions that are already open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from auth.models import AuthSession
from auth.roles import Role
from core.config import get_settings


class Expiry(StrEnum):
    """Why a session ended on its own; stored as ``auth_sessions.revoked_reason``."""

    IDLE = "idle_timeout"
    MAX_AGE = "max_age"


EXPIRY_REASONS = frozenset(reason.value for reason in Expiry)


@dataclass(frozen=True)
class SessionLimits:
    max_age: dt.timedelta
    idle: dt.timedelta | None  # None: no idle limit


def check_session_limits() -> None:
    """Raise ValueError if the per-role overrides name a role that does not exist."""
    limits_for(Role.MEMBER)


def limits_for(role: Role) -> SessionLimits:
    settings = get_settings()
    unknown = set(settings.session_limits_by_role) - {r.value for r in Role}
    if unknown:
        # A typo in a security setting must not silently fall back to the long defaults.
        raise ValueError(f"CHUONG_SESSION_LIMITS_BY_ROLE names unknown roles: {', '.join(sorted(unknown))}")
    if role is Role.MEMBER:
        max_seconds, idle_seconds = settings.refresh_token_ttl_seconds, settings.member_session_idle_seconds
    else:
        max_seconds, idle_seconds = settings.staff_session_max_seconds, settings.staff_session_idle_seconds
    override = settings.session_limits_by_role.get(role.value)
    if override is not None:
        max_seconds = override.max_seconds if override.max_seconds is not None else max_seconds
        idle_seconds = override.idle_seconds if override.idle_seconds is not None else idle_seconds
    return SessionLimits(
        max_age=dt.timedelta(seconds=max_seconds),
        idle=dt.timedelta(seconds=idle_seconds) if idle_seconds else None,
    )


def expiry_of(auth_session: AuthSession, *, role: Role, now: dt.datetime) -> Expiry | None:
    """Whether a live session has run out, and why (the absolute limit wins when both hold)."""
    limits = limits_for(role)
    if now >= min(auth_session.expires_at, auth_session.created_at + limits.max_age):
        return Expiry.MAX_AGE
    if limits.idle is not None and now - auth_session.last_seen_at >= limits.idle:
        return Expiry.IDLE
    return None
