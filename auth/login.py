"""Password sign-in. A password alone opens a restricted session for every role but readers:
it can only enrol or verify TOTP (D-22)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, mfa, networks, passkeys
from auth.metrics import SIGNIN_FAILURES
from auth.models import AuthSession, TotpCredential, User
from auth.passkey_policy import passkey_required
from auth.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from auth.principal import Restriction
from auth.roles import Role
from auth.sessions import TokenPair, open_session, restriction_of
from auth.throttle import check_not_throttled, record_failure, reset_failures
from core.db import utcnow
from core.errors import Unauthorized


@dataclass(frozen=True)
class LoginResult:
    tokens: TokenPair
    user: User
    restriction: Restriction | None


def _invalid() -> Unauthorized:
    # One message for unknown user, wrong password and disabled account: no account enumeration.
    return Unauthorized("Invalid username or password", code="invalid_credentials")


async def login(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    totp_code: str | None,
    ip: str | None,
    user_agent: str | None,
) -> LoginResult:
    user = (
        await session.execute(select(User).where(func.lower(User.username) == username.strip().lower()))
    ).scalar_one_or_none()
    if user is None:
        verify_password(dummy_hash(), password)
        SIGNIN_FAILURES.labels("auth.login_failed", "unknown_user").inc()
        await audit.record_detached(
            action="auth.login_failed",
            outcome="failure",
            actor_kind="anonymous",
            details={"username": username[:64], "reason": "unknown_user"},
        )
        raise _invalid()
    now = utcnow()
    check_not_throttled(user, now=now)
    if not verify_password(user.password_hash, password):
        await record_failure(
            session, user_id=user.id, unit_id=user.unit_id, action="auth.login_failed", reason="password"
        )
        raise _invalid()
    if not user.is_active:
        SIGNIN_FAILURES.labels("auth.login_failed", "disabled").inc()
        await audit.record_detached(
            action="auth.login_failed",
            outcome="failure",
            actor_kind="user",
            actor_id=user.id,
            unit_id=user.unit_id,
            object_type="user",
            object_id=user.id,
            details={"reason": "disabled"},
        )
        raise _invalid()
    await networks.ensure_account_may_sign_in(user, ip=ip, action="auth.login_failed")
    credential = await session.get(TotpCredential, user.id)
    enrolled = credential is not None and credential.confirmed_at is not None
    has_passkey = await passkeys.has_passkey(session, user.id)
    # A person who must use their passkey is not signed in by a code: it is left unspent (a
    # relayed code then proves nothing) and the session waits for the passkey.
    code_accepted = enrolled and not (has_passkey and passkey_required(Role(user.role)))
    # Every check that can fail comes before the first write to the user's row: a failure is
    # counted on that row in a transaction of its own (auth/throttle.py).
    code_verified = False
    if totp_code and credential is not None and code_accepted:
        await mfa.accept_code(session, user=user, credential=credential, code=totp_code)
        code_verified = True
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if code_verified or not (enrolled or has_passkey):
        # Only a complete sign-in clears the failures. With a second factor still to come, a
        # right password must not: else signing in with the password before each guess would
        # give unlimited guesses at the code (accept_code clears them when the code passes).
        reset_failures(user)
    auth_session, tokens = await open_session(
        session, user=user, ip=ip, user_agent=user_agent, mfa_verified=code_verified
    )
    if code_verified:
        auth_session.mfa_method = "totp"
        audit.record(session, action="mfa.verified", object_type="session", object_id=auth_session.id)
    audit.record(
        session,
        action="auth.login",
        object_type="session",
        object_id=auth_session.id,
        actor_kind="user",
        actor_id=user.id,
        unit_id=user.unit_id,
        details={"mfa": auth_session.mfa_verified_at is not None},
    )
    return LoginResult(
        tokens=tokens,
        user=user,
        restriction=restriction_of(
            user, auth_session, totp_enrolled=enrolled, passkey_enrolled=has_passkey, now=now
        ),
    )


async def logout(session: AsyncSession, *, auth_session: AuthSession) -> None:
    auth_session.revoked_at = utcnow()
    auth_session.revoked_reason = "logout"
    audit.record(session, action="auth.logout", object_type="session", object_id=auth_session.id)
