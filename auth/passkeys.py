"""Passkeys and security keys (WebAuthn, D-22) on py_webauthn: registration, assertion (sign-in and
step-up), listing and revocation.

What py_webauthn checks for us: the client data (type, challenge, origin), the RP ID hash, user
presence and (we require it) user verification, the attestation statement and the signature.
What this module adds: challenges kept server-side and spent once (auth/passkey_challenges.py),
the credential belonging to the signed-in user, the signature counter (a counter that does not
grow means a copied key: the credential is flagged and refused from then on), bounds on every
stored value, per-account throttling of failures, and an audit row for every ceremony and every
change (D-25)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.structs import (
    AttestationFormat,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from auth import audit
from auth.mfa import step_up_fresh
from auth.models import AuthSession, User, WebauthnCredential
from auth.passkey_challenges import Ceremony, Challenge, issue, take
from auth.passkey_policy import PASSKEY
from auth.passkey_schemas import (
    MAX_CREDENTIAL_ID_BYTES,
    AuthenticationCredentialIn,
    RegistrationCredentialIn,
)
from auth.step_up import STEP_UP_MESSAGE
from auth.throttle import check_not_throttled, record_failure, reset_failures
from core.config import get_settings
from core.db import detached_transaction, flush_unique, utcnow
from core.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

MAX_PASSKEYS_PER_USER = 10
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True)
class Options:
    ceremony_id: str
    challenge: Challenge
    options: dict[str, Any]


def _json(options: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


async def credentials_of(session: AsyncSession, user_id: uuid.UUID) -> list[WebauthnCredential]:
    rows = await session.scalars(
        select(WebauthnCredential)
        .where(WebauthnCredential.user_id == user_id)
        .order_by(WebauthnCredential.created_at, WebauthnCredential.id)
    )
    return list(rows)


async def has_passkey(session: AsyncSession, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(func.count()).select_from(WebauthnCredential).where(WebauthnCredential.user_id == user_id)
    )
    return bool(found)


def _descriptor(credential: WebauthnCredential) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=credential.credential_id,
        transports=[AuthenticatorTransport(t) for t in credential.transports if t in _TRANSPORTS],
    )


# --- registration -------------------------------------------------------------------------


def _require_fresh(auth_session: AuthSession) -> None:
    """Adding a credential is a sensitive action: the session verified a second factor within the
    step-up window (checked here, whatever the door, as auth/step_up.py does for principals)."""
    if not step_up_fresh(auth_session, now=utcnow()):
        raise Forbidden(STEP_UP_MESSAGE, code="step_up_required")


async def begin_registration(session: AsyncSession, *, user: User, auth_session: AuthSession) -> Options:
    _require_fresh(auth_session)
    existing = await credentials_of(session, user.id)
    if len(existing) >= MAX_PASSKEYS_PER_USER:
        raise Conflict(
            f"At most {MAX_PASSKEYS_PER_USER} passkeys per account; revoke one first", code="passkey_limit"
        )
    settings = get_settings()
    challenge = await issue(ceremony=Ceremony.REGISTRATION, user_id=user.id, session_id=auth_session.id)
    options = generate_registration_options(
        rp_id=settings.webauthn_rp_id,
        rp_name=settings.webauthn_rp_name,
        # The user handle is the account's id: stable, and nothing personal in it.
        user_id=user.id.bytes,
        user_name=user.username,
        user_display_name=user.full_name,
        challenge=challenge.challenge,
        timeout=settings.webauthn_challenge_seconds * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        # The same authenticator twice would be no second key at all.
        exclude_credentials=[_descriptor(c) for c in existing],
    )
    audit.record(session, action="passkey.registration_started", object_type="user", object_id=user.id)
    return Options(ceremony_id=challenge.ceremony_id, challenge=challenge, options=_json(options))


async def finish_registration(
    session: AsyncSession,
    *,
    user: User,
    auth_session: AuthSession,
    ceremony_id: str,
    name: str,
    credential: RegistrationCredentialIn,
) -> WebauthnCredential:
    """Verify the authenticator's attestation and keep the new public key. The session counts as
    verified by a passkey from now on: the person just proved presence and verification on it."""
    settings = get_settings()
    expected = await take(
        ceremony_id, ceremony=Ceremony.REGISTRATION, user_id=user.id, session_id=auth_session.id
    )
    try:
        verified = verify_registration_response(
            credential=credential.to_webauthn(),
            expected_challenge=expected,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=list(settings.webauthn_origins),
            require_user_verification=True,
        )
    # Everything in the credential is the caller's bytes: any failure to parse or verify them
    # (the library's own errors, a malformed CBOR or key) is the caller's 400, never a 500.
    except Exception as exc:
        await _refused_detached(user, action="passkey.registration_failed", reason=_reason(exc))
        raise BadRequest("The passkey could not be verified", code="passkey_invalid") from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise BadRequest("Credential ID longer than 1023 bytes", code="passkey_invalid")
    taken = await session.scalar(
        select(WebauthnCredential.id).where(WebauthnCredential.credential_id == verified.credential_id)
    )
    if taken is not None:
        raise Conflict("This passkey is already registered", code="passkey_already_registered")
    if len(await credentials_of(session, user.id)) >= MAX_PASSKEYS_PER_USER:
        raise Conflict(
            f"At most {MAX_PASSKEYS_PER_USER} passkeys per account; revoke one first", code="passkey_limit"
        )
    now = utcnow()
    # py_webauthn hands the format back as the enum or as its plain string, depending on the path.
    attestation_format = AttestationFormat(verified.fmt).value
    row = WebauthnCredential(
        id=uuid.uuid4(),
        user_id=user.id,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name,
        aaguid=verified.aaguid,
        attestation_format=attestation_format,
        backed_up=verified.credential_backed_up,
        transports=[t for t in credential.response.transports if t in _TRANSPORTS],
        created_at=now,
    )
    session.add(row)
    auth_session.mfa_verified_at = now
    auth_session.mfa_method = PASSKEY
    audit.record(
        session,
        action="passkey.registered",
        object_type="passkey",
        object_id=row.id,
        details={
            "user_id": str(user.id),
            "name": name,
            "aaguid": verified.aaguid,
            "format": attestation_format,
            "backed_up": verified.credential_backed_up,
        },
    )
    # The look-up above cannot see a registration of the same key still running (two ceremonies
    # finished at once): its insert then breaks the unique credential id, a 409 like the above.
    await flush_unique(
        session, conflict=Conflict("This passkey is already registered", code="passkey_already_registered")
    )
    return row


# --- assertion: sign-in and step-up --------------------------------------------------------


async def begin_assertion(session: AsyncSession, *, user: User, auth_session: AuthSession) -> Options:
    usable = [c for c in await credentials_of(session, user.id) if c.clone_suspected_at is None]
    if not usable:
        raise Forbidden(
            "No usable passkey on this account; enrol one first", code="passkey_enrolment_required"
        )
    settings = get_settings()
    challenge = await issue(ceremony=Ceremony.AUTHENTICATION, user_id=user.id, session_id=auth_session.id)
    options = generate_authentication_options(
        rp_id=settings.webauthn_rp_id,
        challenge=challenge.challenge,
        timeout=settings.webauthn_challenge_seconds * 1000,
        allow_credentials=[_descriptor(c) for c in usable],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    audit.record(
        session, action="passkey.assertion_started", object_type="session", object_id=auth_session.id
    )
    return Options(ceremony_id=challenge.ceremony_id, challenge=challenge, options=_json(options))


def _invalid() -> Unauthorized:
    return Unauthorized("The passkey could not be verified", code="invalid_passkey", headers={})


async def finish_assertion(
    session: AsyncSession,
    *,
    user: User,
    auth_session: AuthSession,
    ceremony_id: str,
    credential: AuthenticationCredentialIn,
) -> WebauthnCredential:
    """Verify an assertion by one of ``user``'s passkeys: completes a sign-in, or refreshes the
    step-up window. Every failure is counted against the account (auth/throttle.py)."""
    now = utcnow()
    check_not_throttled(user, now=now)
    expected = await take(
        ceremony_id, ceremony=Ceremony.AUTHENTICATION, user_id=user.id, session_id=auth_session.id
    )
    try:
        raw_id = base64url_to_bytes(credential.raw_id)
    except ValueError:
        raw_id = b""
    stored = await session.scalar(
        select(WebauthnCredential).where(
            WebauthnCredential.credential_id == raw_id, WebauthnCredential.user_id == user.id
        )
    )
    if stored is None:
        await _failed(session, user, reason="unknown_credential")
        raise _invalid()
    if stored.clone_suspected_at is not None:
        await _failed(session, user, reason="clone_suspected_credential")
        raise _invalid()
    settings = get_settings()
    try:
        # The stored counter is checked below, after the signature: only a genuine assertion may
        # flag a credential as copied (else anyone could disable a leader's key with junk).
        verified = verify_authentication_response(
            credential=credential.to_webauthn(),
            expected_challenge=expected,
            expected_rp_id=settings.webauthn_rp_id,
            expected_origin=list(settings.webauthn_origins),
            credential_public_key=stored.public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except Exception as exc:  # the caller's bytes: see finish_registration
        await _failed(session, user, reason=_reason(exc))
        raise _invalid() from None
    if (verified.new_sign_count or stored.sign_count) and verified.new_sign_count <= stored.sign_count:
        # A counter that does not grow: two copies of one key are in use (WebAuthn §6.1.1).
        passkey_id, old, new = stored.id, stored.sign_count, verified.new_sign_count
        user_id, unit_id = user.id, user.unit_id
        await _failed(session, user, reason="counter_went_back")
        async with detached_transaction() as detached:
            await detached.execute(
                update(WebauthnCredential)
                .where(WebauthnCredential.id == passkey_id)
                .values(clone_suspected_at=utcnow())
            )
            audit.record(
                detached,
                action="passkey.clone_suspected",
                outcome="denied",
                object_type="passkey",
                object_id=passkey_id,
                actor_kind="user",
                actor_id=user_id,
                unit_id=unit_id,
                details={"stored_count": old, "presented_count": new},
            )
        raise _invalid()
    stored.sign_count = verified.new_sign_count
    stored.last_used_at = now
    stored.backed_up = verified.credential_backed_up
    reset_failures(user)
    auth_session.mfa_verified_at = now
    auth_session.mfa_method = PASSKEY
    audit.record(
        session,
        action="passkey.verified",
        object_type="session",
        object_id=auth_session.id,
        details={"passkey_id": str(stored.id)},
    )
    await session.flush()
    return stored


def _reason(exc: Exception) -> str:
    # Short and free of the caller's bytes: the library's messages may quote what was sent.
    message = str(exc).lower()
    for needle, reason in (
        ("origin", "wrong_origin"),
        ("rp id", "wrong_rp_id"),
        ("challenge", "wrong_challenge"),
        ("user verification", "not_user_verified"),
        ("not present", "not_user_present"),
        ("signature", "bad_signature"),
    ):
        if needle in message:
            return reason
    return "malformed"


async def _failed(session: AsyncSession, user: User, *, reason: str) -> None:
    await record_failure(
        session, user_id=user.id, unit_id=user.unit_id, action="passkey.failed", reason=reason
    )


async def _refused_detached(user: User, *, action: str, reason: str) -> None:
    await audit.record_detached(
        action=action,
        outcome="failure",
        object_type="user",
        object_id=user.id,
        actor_kind="user",
        actor_id=user.id,
        unit_id=user.unit_id,
        details={"reason": reason},
    )


# --- listing and revocation ---------------------------------------------------------------


async def revoke(session: AsyncSession, *, user: User, passkey_id: uuid.UUID, by_admin: bool) -> None:
    """Remove one passkey of ``user`` (the user themself, or an admin of their unit)."""
    row = await session.scalar(
        select(WebauthnCredential).where(
            WebauthnCredential.id == passkey_id, WebauthnCredential.user_id == user.id
        )
    )
    if row is None:
        raise NotFound("No such passkey", code="passkey_not_found")
    await session.delete(row)
    audit.record(
        session,
        action="passkey.revoked",
        object_type="passkey",
        object_id=passkey_id,
        details={"user_id": str(user.id), "name": row.name, "by_admin": by_admin},
    )
    await session.flush()


async def remove_all(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    """The two-admin reset (auth/mfa_reset.py): every passkey goes with the TOTP secret."""
    rows = await credentials_of(session, user_id)
    for row in rows:
        await session.delete(row)
    return len(rows)
