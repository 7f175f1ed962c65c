"""Sign-in, TOTP, password and own sessions."""

from __future__ import annotations

import uuid

import segno
from fastapi import APIRouter, Depends, Request, status

from api.deps import (
    PUBLIC,
    Authenticated,
    ChangingPassword,
    EndingOwnSessions,
    Enrolling,
    FullSession,
    SessionDep,
    SignedIn,
    SigningOut,
    Verifying,
)
from auth import account_sessions, audit, mfa, ratelimit
from auth import login as login_service
from auth.principal import Principal
from auth.roles import Role, permissions_of
from auth.schemas import (
    ChangePasswordRequest,
    CodeRequest,
    EnrolmentResponse,
    LoginRequest,
    MeOut,
    RecoveryCodesResponse,
    RecoveryRequest,
    RefreshRequest,
    SessionOut,
    TokenResponse,
)
from auth.sessions import RefreshReuse, refresh_session, revoke_session_family
from auth.users import change_own_password, to_out
from core.context import current_context
from core.db import abandon, detached_transaction
from core.errors import Unauthorized

router = APIRouter(tags=["auth"])

OwnMfaChange = Depends(Authenticated(allow_delegated=False, step_up=True, own_account=True))


@router.post("/login", dependencies=[PUBLIC], response_model=TokenResponse)
async def login(body: LoginRequest, request: Request, session: SessionDep) -> TokenResponse:
    """Password (and, if already enrolled, optionally the TOTP code in the same call). Without a
    verified code the session is restricted: see ``restriction`` in the answer."""
    ctx = current_context()
    await ratelimit.enforce_login(ctx.ip or "")
    result = await login_service.login(
        session,
        username=body.username,
        password=body.password,
        totp_code=body.totp_code,
        ip=ctx.ip,
        user_agent=ctx.user_agent,
    )
    tokens = result.tokens
    return TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        session_id=tokens.session_id,
        restriction=result.restriction.value if result.restriction else None,
    )


@router.post("/refresh", dependencies=[PUBLIC], response_model=TokenResponse)
async def refresh(body: RefreshRequest, session: SessionDep) -> TokenResponse:
    """Rotate the refresh token. Presenting an already-rotated token revokes the whole session."""
    await ratelimit.enforce_login(current_context().ip or "")
    try:
        tokens = await refresh_session(session, refresh_token=body.refresh_token)
    except RefreshReuse as reuse:
        # The revocation must outlive this failing request: release the request's locks first
        # (core/db.py abandon), then revoke in a transaction of its own.
        await abandon(session)
        async with detached_transaction() as detached:
            await revoke_session_family(detached, session_id=reuse.session_id, reason="refresh_reuse")
            audit.record(
                detached,
                action="auth.refresh_reused",
                outcome="denied",
                object_type="session",
                object_id=reuse.session_id,
                actor_kind="user",
                actor_id=reuse.user_id,
            )
        raise Unauthorized(
            "Refresh token reuse detected; the session was revoked", code="session_revoked"
        ) from None
    return TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
        session_id=tokens.session_id,
        restriction=None,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(session: SessionDep, principal: Principal = SigningOut) -> None:
    assert principal.session is not None
    await login_service.logout(session, auth_session=principal.session)


@router.get("/me", response_model=MeOut)
async def me(session: SessionDep, principal: Principal = SignedIn) -> MeOut:
    assert principal.actor is not None and principal.user is not None
    out = await to_out(session, principal.actor, reveal_personal=True)
    return MeOut(
        **out.model_dump(),
        permissions=sorted(
            principal.permissions
            if principal.restriction is None
            else permissions_of(Role(principal.actor.role))
        ),
        acting_as=principal.user.id if principal.is_delegated else None,
        delegation_id=principal.delegation.id if principal.delegation else None,
    )


@router.post("/mfa/enrol", response_model=EnrolmentResponse)
async def begin_enrolment(session: SessionDep, principal: Principal = Enrolling) -> EnrolmentResponse:
    """Returns the new secret once, as text and as a QR code for an authenticator app."""
    assert principal.actor is not None
    enrolment = await mfa.begin_enrolment(session, user=principal.actor)
    qr = segno.make(enrolment.otpauth_uri, error="m").svg_inline(scale=4)
    return EnrolmentResponse(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=qr)


@router.post("/mfa/enrol/confirm", response_model=RecoveryCodesResponse)
async def confirm_enrolment(
    body: CodeRequest, session: SessionDep, principal: Principal = Enrolling
) -> RecoveryCodesResponse:
    """Confirm with a first code; the answer holds 10 recovery codes, shown only this once."""
    assert principal.actor is not None and principal.session is not None
    codes = await mfa.confirm_enrolment(
        session, user=principal.actor, auth_session=principal.session, code=body.code
    )
    return RecoveryCodesResponse(recovery_codes=codes)


@router.post("/mfa/verify", status_code=status.HTTP_204_NO_CONTENT)
async def verify(body: CodeRequest, session: SessionDep, principal: Principal = Verifying) -> None:
    """Completes a password-only sign-in, and is also the step-up before sensitive actions."""
    assert principal.actor is not None and principal.session is not None
    await mfa.verify(session, user=principal.actor, auth_session=principal.session, code=body.code)


@router.post("/mfa/recover", response_model=dict[str, int])
async def recover(
    body: RecoveryRequest, session: SessionDep, principal: Principal = Verifying
) -> dict[str, int]:
    """Use a single-use recovery code instead of the TOTP code."""
    assert principal.actor is not None and principal.session is not None
    remaining = await mfa.use_recovery_code(
        session, user=principal.actor, auth_session=principal.session, code=body.recovery_code
    )
    return {"remaining": remaining}


@router.post("/mfa/recovery-codes", response_model=RecoveryCodesResponse)
async def regenerate_recovery_codes(
    session: SessionDep, principal: Principal = OwnMfaChange
) -> RecoveryCodesResponse:
    """Replace all recovery codes (needs a fresh TOTP step-up)."""
    assert principal.actor is not None
    codes = await mfa.regenerate_recovery_codes(session, user=principal.actor)
    return RecoveryCodesResponse(recovery_codes=codes)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: ChangePasswordRequest, session: SessionDep, principal: Principal = ChangingPassword
) -> None:
    assert principal.actor is not None
    await change_own_password(
        session, user=principal.actor, current=body.current_password, new=body.new_password
    )


@router.get("/sessions", response_model=list[SessionOut])
async def list_sessions(session: SessionDep, principal: Principal = FullSession) -> list[SessionOut]:
    return await account_sessions.own_sessions(session, principal=principal)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(
    session_id: uuid.UUID, session: SessionDep, principal: Principal = EndingOwnSessions
) -> None:
    await account_sessions.end_own_session(session, principal=principal, session_id=session_id)


@router.post("/sessions/revoke-all", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out_everywhere(session: SessionDep, principal: Principal = EndingOwnSessions) -> None:
    """End every session of the caller, this one included."""
    await account_sessions.end_all_own_sessions(session, principal=principal)
