"""Resetting someone's second factor takes two admins (request, then confirm by another admin).

Both admins must be able to manage the account (its unit is in their subtree, its role not above
theirs); the confirmer needs a fresh step-up, checked by the caller. Confirmation deletes the TOTP
secret and recovery codes and ends every session: the holder signs in with their password and
enrols again.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, mfa
from auth.models import User
from auth.principal import Principal
from auth.roles import Role, can_grant
from auth.sessions import revoke_all_sessions
from auth.users import get_user
from console.models import MfaResetRequest
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound

REQUEST_TTL = dt.timedelta(hours=24)


def _admin_over(principal: Principal, user: User) -> None:
    assert principal.role is not None and principal.actor is not None
    if not can_grant(principal.role, Role(user.role)):
        raise Forbidden("You cannot reset the MFA of an account above your role", code="role_above_own")
    if principal.actor.id == user.id:
        raise Forbidden("Ask another admin to reset your own MFA", code="self_mfa_reset")


async def pending_for(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID
) -> MfaResetRequest | None:
    user = await get_user(session, principal=principal, user_id=user_id)
    return (
        await session.execute(
            select(MfaResetRequest).where(
                MfaResetRequest.user_id == user.id,
                MfaResetRequest.status == "pending",
                MfaResetRequest.expires_at > utcnow(),
            )
        )
    ).scalar_one_or_none()


async def request_reset(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, reason: str | None
) -> MfaResetRequest:
    user = await get_user(session, principal=principal, user_id=user_id)
    _admin_over(principal, user)
    assert principal.actor is not None
    now = utcnow()
    # An expired request no longer blocks a new one.
    stale = await session.scalars(
        select(MfaResetRequest).where(
            MfaResetRequest.user_id == user.id,
            MfaResetRequest.status == "pending",
            MfaResetRequest.expires_at <= now,
        )
    )
    for old in stale:
        old.status, old.decided_at = "cancelled", now
    request = MfaResetRequest(
        id=uuid.uuid4(),
        user_id=user.id,
        requested_by_id=principal.actor.id,
        reason=reason,
        requested_at=now,
        expires_at=now + REQUEST_TTL,
        status="pending",
    )
    session.add(request)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("An MFA reset is already waiting for confirmation", code="mfa_reset_pending") from exc
    audit.record(
        session,
        action="mfa_reset.requested",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={"request_id": str(request.id), "reason": reason or ""},
    )
    return request


async def _open_request(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> tuple[MfaResetRequest, User]:
    request = await session.get(MfaResetRequest, request_id, with_for_update=True)
    if request is None:
        raise NotFound("No such MFA reset request")
    user = await get_user(session, principal=principal, user_id=request.user_id)  # 404 outside subtree
    if request.status != "pending" or request.expires_at <= utcnow():
        raise Conflict("This MFA reset request is no longer open", code="mfa_reset_closed")
    return request, user


async def confirm_reset(session: AsyncSession, *, principal: Principal, request_id: uuid.UUID) -> User:
    request, user = await _open_request(session, principal=principal, request_id=request_id)
    _admin_over(principal, user)
    assert principal.actor is not None
    if principal.actor.id == request.requested_by_id:
        raise Forbidden("A second admin must confirm this reset", code="second_admin_required")
    now = utcnow()
    request.status, request.decided_by_id, request.decided_at = "confirmed", principal.actor.id, now
    await mfa.reset(session, user=user)
    await revoke_all_sessions(session, user=user, reason="mfa_reset")
    audit.record(
        session,
        action="mfa_reset.confirmed",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={"request_id": str(request.id), "requested_by": str(request.requested_by_id)},
    )
    return user


async def cancel_reset(session: AsyncSession, *, principal: Principal, request_id: uuid.UUID) -> None:
    request, user = await _open_request(session, principal=principal, request_id=request_id)
    assert principal.actor is not None
    request.status, request.decided_by_id, request.decided_at = "cancelled", principal.actor.id, utcnow()
    audit.record(
        session,
        action="mfa_reset.cancelled",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={"request_id": str(request.id)},
    )
