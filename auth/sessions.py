"""Sign-in sessions: issuing and rotating tokens, resolving an access token, revocation (D-23)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, delete, exists, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, networks
from auth.models import AuthSession, RefreshToken, TotpCredential, User, WebauthnCredential
from auth.passkey_policy import PASSKEY, passkey_required
from auth.passwords import is_expired
from auth.principal import Restriction
from auth.roles import MFA_EXEMPT_ROLES, Role
from auth.session_limits import EXPIRY_REASONS, Expiry, expiry_of, limits_for
from auth.tokens import decode_access_token, issue_access_token, new_refresh_token
from core.context import current_context
from core.crypto import keyed_hash
from core.db import abandon, detached_transaction, utcnow
from core.errors import Unauthorized

LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


async def open_session(
    session: AsyncSession, *, user: User, ip: str | None, user_agent: str | None, mfa_verified: bool
) -> tuple[AuthSession, TokenPair]:
    now = utcnow()
    auth_session = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        # The role's absolute limit (12 h for staff, the refresh-token lifetime for readers).
        expires_at=now + limits_for(Role(user.role)).max_age,
        ip=ip,
        user_agent=(user_agent or "")[:512] or None,
        mfa_verified_at=now if mfa_verified else None,
        created_at=now,
        last_seen_at=now,
    )
    session.add(auth_session)
    await session.flush()
    return auth_session, await _issue(session, auth_session=auth_session, user=user, now=now)


async def _issue(
    session: AsyncSession, *, auth_session: AuthSession, user: User, now: dt.datetime
) -> TokenPair:
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            token_hash=keyed_hash(refresh),
            expires_at=auth_session.expires_at,
            created_at=now,
        )
    )
    access, ttl = issue_access_token(
        user_id=user.id, session_id=auth_session.id, token_version=user.token_version, now=now
    )
    await session.flush()
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl, session_id=auth_session.id)


class RefreshReuse(Exception):
    """A rotated refresh token was presented again: the session family has been revoked."""

    def __init__(self, user_id: uuid.UUID, session_id: uuid.UUID) -> None:
        self.user_id = user_id
        self.session_id = session_id


async def refresh_session(session: AsyncSession, *, refresh_token: str) -> TokenPair:
    """Rotate: the presented token is consumed by one conditional UPDATE, so two concurrent uses
    of the same token give one success and one reuse.

    A refresh is not activity: it does not move ``last_seen_at``, so a client that refreshes on a
    timer cannot keep an idle staff session open; the limits are checked before anything is
    written, so the detached transaction that ends an expired session never waits on this one."""
    now = utcnow()
    token_hash = keyed_hash(refresh_token)
    owner = (
        await session.execute(
            select(AuthSession, User)
            .join(RefreshToken, RefreshToken.session_id == AuthSession.id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.token_hash == token_hash)
        )
    ).first()
    if owner is not None:
        await _ensure_not_expired(session, owner[0], owner[1], now=now)
        await networks.ensure_account_may_sign_in(
            owner[1], ip=current_context().ip, action="auth.refresh_failed"
        )
    consumed = (
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .returning(RefreshToken.session_id, RefreshToken.expires_at)
        )
    ).first()
    if consumed is None:
        if owner is not None:
            raise RefreshReuse(owner[0].user_id, owner[0].id)
        raise Unauthorized("Invalid refresh token", code="invalid_token")
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id == consumed.session_id)
        )
    ).first()
    if row is None or consumed.expires_at <= now:
        raise Unauthorized("Refresh token expired", code="token_expired")
    auth_session, user = row
    if auth_session.revoked_at is not None or not user.is_active:
        raise _ended(auth_session)
    pair = await _issue(session, auth_session=auth_session, user=user, now=now)
    audit.record(
        session,
        action="auth.refresh",
        object_type="session",
        object_id=auth_session.id,
        actor_kind="user",
        actor_id=user.id,
        unit_id=user.unit_id,
    )
    return pair


def _ended(auth_session: AuthSession) -> Unauthorized:
    """The 401 for a session that is over: ``session_expired`` when it ran out of time (sign in
    again), ``session_revoked`` when someone or something ended it."""
    if auth_session.revoked_reason in EXPIRY_REASONS:
        return Unauthorized("Session expired; sign in again", code="session_expired")
    return Unauthorized("Session has ended", code="session_revoked")


async def _ensure_not_expired(
    session: AsyncSession, auth_session: AuthSession, user: User, *, now: dt.datetime
) -> None:
    """Raise 401 ``session_expired`` if the session is past its role's absolute or idle limit.
    The first request to notice ends the session and audits it, once (a conditional UPDATE in a
    transaction of its own: the failing request rolls back). A session ended otherwise is left
    to the caller (a refresh still reports the reuse of a rotated token)."""
    if auth_session.revoked_reason in EXPIRY_REASONS:
        raise _ended(auth_session)
    if auth_session.revoked_at is not None:
        return
    expiry = expiry_of(auth_session, role=Role(user.role), now=now)
    if expiry is None:
        return
    session_id, user_id, unit_id = auth_session.id, user.id, user.unit_id
    # Nothing of this request may be held while the detached transaction writes (core/db.py).
    await abandon(session)
    await _end_expired(session_id=session_id, user_id=user_id, unit_id=unit_id, expiry=expiry, now=now)
    raise Unauthorized("Session expired; sign in again", code="session_expired")


async def _end_expired(
    *, session_id: uuid.UUID, user_id: uuid.UUID, unit_id: uuid.UUID, expiry: Expiry, now: dt.datetime
) -> None:
    async with detached_transaction() as detached:
        ended = (
            await detached.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=expiry.value)
                .returning(AuthSession.id)
            )
        ).first()
        if ended is not None:
            audit.record(
                detached,
                action="auth.session_expired",
                outcome="denied",
                object_type="session",
                object_id=session_id,
                actor_kind="user",
                actor_id=user_id,
                unit_id=unit_id,
                details={"reason": expiry.value},
            )


async def revoke_session_family(session: AsyncSession, *, session_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


async def revoke_all_sessions(session: AsyncSession, *, user: User, reason: str) -> None:
    """End every token of ``user`` on its next request: bump the token version (checked per
    request) and mark every live session revoked (so refresh tokens stop working too)."""
    user.token_version = User.token_version + 1
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
    await session.flush()
    await session.refresh(user, ["token_version"])


@dataclass(frozen=True)
class ResolvedSession:
    user: User
    auth_session: AuthSession
    restriction: Restriction | None


async def resolve_access_token(
    session: AsyncSession, token: str, *, activity: bool = True
) -> ResolvedSession:
    """Check a bearer token against the database: one primary-key join per request, which the
    permission checks need anyway (current role and unit), so revocation is immediate, and so
    is the end of a session that ran past its role's limits. ``activity`` False (a stream
    reconnecting on its own) does not count towards the idle limit."""
    claims = decode_access_token(token)
    row = (
        await session.execute(
            select(
                AuthSession,
                User,
                TotpCredential.confirmed_at,
                exists().where(WebauthnCredential.user_id == User.id).label("passkey_enrolled"),
            )
            .join(User, User.id == AuthSession.user_id)
            .outerjoin(TotpCredential, TotpCredential.user_id == User.id)
            .where(AuthSession.id == claims.session_id)
        )
    ).first()
    if row is None:
        raise Unauthorized("Session not found", code="session_revoked")
    auth_session, user, totp_confirmed_at, passkey_enrolled = row
    now = utcnow()
    if user.id != claims.user_id or not user.is_active or user.token_version != claims.token_version:
        raise Unauthorized("Session has ended", code="session_revoked")
    await _ensure_not_expired(session, auth_session, user, now=now)
    if auth_session.revoked_at is not None:
        raise _ended(auth_session)
    if activity and now - auth_session.last_seen_at >= LAST_SEEN_RESOLUTION:
        await _touch(session, session_id=auth_session.id, now=now)
    return ResolvedSession(
        user=user,
        auth_session=auth_session,
        restriction=restriction_of(
            user,
            auth_session,
            totp_enrolled=totp_confirmed_at is not None,
            passkey_enrolled=passkey_enrolled,
            now=now,
        ),
    )


async def _touch(session: AsyncSession, *, session_id: uuid.UUID, now: dt.datetime) -> None:
    """Move ``last_seen_at`` (the idle clock) at most once a minute per session: one conditional
    UPDATE that skips a row another request is already updating, so parallel requests of one
    browser never queue behind each other's transactions for it."""
    stale = (
        select(AuthSession.id)
        .where(AuthSession.id == session_id, AuthSession.last_seen_at <= now - LAST_SEEN_RESOLUTION)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == stale)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def live_sessions(*, user: User, now: dt.datetime) -> Select[AuthSession]:
    """The user's sessions that can still be used: not ended, not past the role's limits."""
    limits = limits_for(Role(user.role))
    query = select(AuthSession).where(
        AuthSession.user_id == user.id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now,
        AuthSession.created_at > now - limits.max_age,
    )
    if limits.idle is not None:
        query = query.where(AuthSession.last_seen_at > now - limits.idle)
    return query


def restriction_of(
    user: User,
    auth_session: AuthSession,
    *,
    totp_enrolled: bool,
    now: dt.datetime,
    passkey_enrolled: bool = False,
) -> Restriction | None:
    role = Role(user.role)
    if role not in MFA_EXEMPT_ROLES:
        if passkey_enrolled and passkey_required(role):
            # Only a passkey signs such a person in: a TOTP code can be relayed by a phishing page.
            if auth_session.mfa_method != PASSKEY or auth_session.mfa_verified_at is None:
                return Restriction.PASSKEY_REQUIRED
        elif not (totp_enrolled or passkey_enrolled):
            return Restriction.MFA_ENROLMENT_REQUIRED
        elif auth_session.mfa_verified_at is None:
            return Restriction.MFA_REQUIRED
    if user.must_change_password or is_expired(user.password_changed_at, now):
        return Restriction.PASSWORD_CHANGE_REQUIRED
    return None


SESSION_RETENTION = dt.timedelta(days=30)


async def purge_ended_sessions(session: AsyncSession, *, now: dt.datetime) -> int:
    """Delete sessions (and, by cascade, their refresh tokens) that ended more than 30 days ago.
    The audit log keeps the history; these rows only serve live sign-ins."""
    cutoff = now - SESSION_RETENTION
    result = await session.execute(
        delete(AuthSession).where((AuthSession.expires_at < cutoff) | (AuthSession.revoked_at < cutoff))
    )
    # Counted by the server: returning every id only to count them cost a round of rows.
    purged = cast(CursorResult[Any], result).rowcount
    if purged:
        audit.record(session, action="session.purged", actor_kind="system", details={"count": purged})
    return purged
