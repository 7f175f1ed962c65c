"""TOTP enrolment, verification (sign-in and step-up) and recovery codes (D-22)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import AuthSession, RecoveryCode, TotpCredential, User, WebauthnCredential
from auth.passkey_policy import passkey_required
from auth.roles import Role
from auth.throttle import check_not_throttled, record_failure, reset_failures
from auth.totp import (
    hash_recovery_code,
    matching_step,
    new_recovery_codes,
    new_secret,
    provisioning_uri,
)
from core.config import get_settings
from core.crypto import decrypt_text, encrypt_text
from core.db import utcnow
from core.errors import Conflict, Forbidden, Unauthorized

# Namespace of the advisory locks that serialise one account's MFA changes (``_lock_mfa_of``).
MFA_CHANGE_LOCK_NAMESPACE = 0x6D666163


async def _lock_mfa_of(session: AsyncSession, user: User) -> None:
    """Serialise one account's enrolment, its confirmation and new recovery codes until the
    transaction ends. Each reads the account's second factor, then replaces it: two at once (a
    double click, two tabs) both saw the same state, so two enrolments inserted the same row (a
    500) and two sets of recovery codes both stayed valid although each answer said it replaced
    the rest. An advisory lock, taken first, rather than a row lock: sign-ins and recovery lock
    the credential, the codes and the user's row in orders of their own."""
    key = int.from_bytes(user.id.bytes[:4], "big") - (1 << 31)
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": MFA_CHANGE_LOCK_NAMESPACE, "key": key}
    )


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


async def begin_enrolment(session: AsyncSession, *, user: User) -> Enrolment:
    """Create (or replace an unconfirmed) secret. The secret is returned only here, before it is
    confirmed; once confirmed it never leaves the server again."""
    await _lock_mfa_of(session, user)
    existing = await session.get(TotpCredential, user.id, populate_existing=True)
    if existing is not None and existing.confirmed_at is not None:
        raise Conflict("TOTP is already enrolled; an admin must reset it first", code="mfa_already_enrolled")
    secret = new_secret()
    if existing is None:
        session.add(TotpCredential(user_id=user.id, secret_enc=encrypt_text(secret)))
    else:
        existing.secret_enc = encrypt_text(secret)
        existing.last_used_step = None
    audit.record(session, action="mfa.enrolment_started", object_type="user", object_id=user.id)
    await session.flush()
    uri = provisioning_uri(secret, account=user.username, issuer=get_settings().totp_issuer)
    return Enrolment(secret=secret, otpauth_uri=uri)


async def confirm_enrolment(
    session: AsyncSession, *, user: User, auth_session: AuthSession, code: str
) -> list[str]:
    """Confirm with a first valid code; returns the 10 recovery codes (shown once, stored hashed)."""
    await _lock_mfa_of(session, user)
    credential = await session.get(TotpCredential, user.id, populate_existing=True)
    if credential is None:
        raise Conflict("Start enrolment first", code="mfa_not_started")
    if credential.confirmed_at is not None:
        raise Conflict("TOTP is already enrolled", code="mfa_already_enrolled")
    await accept_code(session, user=user, credential=credential, code=code, action="mfa.enrol_failed")
    now = utcnow()
    credential.confirmed_at = now
    auth_session.mfa_verified_at = now
    codes = new_recovery_codes()
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_recovery_code(c)) for c in codes)
    audit.record(session, action="mfa.enrolled", object_type="user", object_id=user.id)
    await session.flush()
    return codes


async def verify(session: AsyncSession, *, user: User, auth_session: AuthSession, code: str) -> None:
    """Verify a code for this session: completes sign-in, or refreshes the step-up window."""
    credential = await session.get(TotpCredential, user.id)
    if credential is None or credential.confirmed_at is None:
        raise Forbidden("Enrol TOTP first", code="mfa_enrolment_required")
    await refuse_codes_if_passkey_required(session, user=user)
    await accept_code(session, user=user, credential=credential, code=code)
    auth_session.mfa_verified_at = utcnow()
    auth_session.mfa_method = "totp"
    audit.record(session, action="mfa.verified", object_type="session", object_id=auth_session.id)


async def accept_code(
    session: AsyncSession,
    *,
    user: User,
    credential: TotpCredential,
    code: str,
    action: str = "mfa.failed",
) -> None:
    """Accept ``code`` once (single use), or count a failure and raise 401. A failure rolls back
    the caller's transaction before it is counted (auth/throttle.py)."""
    now = utcnow()
    check_not_throttled(user, now=now)
    step = matching_step(decrypt_text(credential.secret_enc), code, now=now)
    if step is None:
        await record_failure(
            session, user_id=user.id, unit_id=user.unit_id, action=action, reason="wrong_code"
        )
        raise Unauthorized("Invalid TOTP code", code="invalid_mfa_code", headers={})
    # One atomic conditional UPDATE: of two requests carrying the same code, the second waits
    # for the first's row lock, re-reads last_used_step and matches nothing.
    accepted = (
        await session.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == user.id,
                or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
            )
            .values(last_used_step=step)
            .returning(TotpCredential.user_id)
        )
    ).first()
    if accepted is None:
        await record_failure(
            session, user_id=user.id, unit_id=user.unit_id, action="mfa.replayed", reason="replay"
        )
        raise Unauthorized("This TOTP code was already used", code="mfa_code_replayed", headers={})
    reset_failures(user)
    await session.refresh(credential, ["last_used_step"])


async def regenerate_recovery_codes(session: AsyncSession, *, user: User) -> list[str]:
    """Replace every recovery code of ``user``; returns the new ones (shown once, stored
    hashed). Only the codes of the last answer stay valid, however many requests ran at once."""
    await _lock_mfa_of(session, user)
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = new_recovery_codes()
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_recovery_code(c)) for c in codes)
    audit.record(session, action="mfa.recovery_codes_regenerated", object_type="user", object_id=user.id)
    await session.flush()
    return codes


async def use_recovery_code(
    session: AsyncSession, *, user: User, auth_session: AuthSession, code: str
) -> int:
    """Spend one recovery code in place of a TOTP code; returns how many remain."""
    now = utcnow()
    check_not_throttled(user, now=now)
    # Losing every passkey goes through the two-admin reset, not a code (auth/passkey_policy.py).
    await refuse_codes_if_passkey_required(session, user=user)
    spent = (
        await session.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == hash_recovery_code(code),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
            .returning(RecoveryCode.id)
        )
    ).first()
    if spent is None:
        await record_failure(
            session, user_id=user.id, unit_id=user.unit_id, action="mfa.recovery_failed", reason="wrong_code"
        )
        raise Unauthorized("Invalid recovery code", code="invalid_recovery_code", headers={})
    reset_failures(user)
    auth_session.mfa_verified_at = now
    auth_session.mfa_method = "recovery_code"
    remaining = len(
        (
            await session.execute(
                select(RecoveryCode.id).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
            )
        ).all()
    )
    audit.record(
        session,
        action="mfa.recovery_code_used",
        object_type="user",
        object_id=user.id,
        details={"remaining": remaining},
    )
    return remaining


async def reset(session: AsyncSession, *, user: User) -> int:
    """Admin reset: the user must enrol again on next sign-in; every token of theirs ends. The
    passkeys go too (the one recovery from losing them all); returns how many there were."""
    await _lock_mfa_of(session, user)  # new recovery codes of a request running now go too
    await session.execute(delete(TotpCredential).where(TotpCredential.user_id == user.id))
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    removed = await session.execute(
        delete(WebauthnCredential)
        .where(WebauthnCredential.user_id == user.id)
        .returning(WebauthnCredential.id)
    )
    return len(removed.all())


async def refuse_codes_if_passkey_required(session: AsyncSession, *, user: User) -> None:
    """403 ``passkey_required`` for a person whose role must use the passkeys they hold."""
    if passkey_required(Role(user.role)):
        held = await session.scalar(
            select(func.count()).select_from(WebauthnCredential).where(WebauthnCredential.user_id == user.id)
        )
        if held:
            raise Forbidden(
                "Use your passkey: codes are not accepted for this account", code="passkey_required"
            )


def step_up_fresh(auth_session: AuthSession | None, *, now: dt.datetime) -> bool:
    if auth_session is None or auth_session.mfa_verified_at is None:
        return False
    return now - auth_session.mfa_verified_at <= dt.timedelta(seconds=get_settings().step_up_max_age_seconds)
