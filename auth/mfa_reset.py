"""Resetting someone's second factor takes two admins (request, then confirm by another admin).

This is the one implementation of the rule, whatever the door: the API (``POST
/v1/users/{id}/mfa-reset``, ``POST /v1/users/{id}/reset-credentials`` with ``reset_mfa``,
``/v1/mfa-resets/…``) and the console's admin pages call these functions; none of them deletes a
TOTP secret any other way.

Both admins must be able to manage the account (its unit is in their subtree, its role not above
theirs) and hold ``users:write``; the confirmer must be another person than the requester and
needs a fresh step-up, checked here. Confirmation deletes the TOTP secret and recovery codes and
ends every session: the holder signs in with their password and enrols again.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, mfa
from auth.managed import managed_user
from auth.models import MfaResetRequest, Unit, User
from auth.principal import Principal
from auth.roles import Permission, Role, can_grant
from auth.sessions import revoke_all_sessions
from auth.step_up import require_fresh_step_up
from core.db import flush_unique, utcnow
from core.errors import Conflict, Forbidden, NotFound

REQUEST_TTL = dt.timedelta(hours=24)


def _admin_over(principal: Principal, user: User) -> uuid.UUID:
    """The acting admin's id, if they may reset this account's MFA."""
    if principal.actor is None or principal.role is None or not principal.has(Permission.USERS_WRITE):
        raise Forbidden("You do not have permission", code="permission_denied")
    if principal.is_delegated:  # each of the four eyes is a person acting for themselves
        raise Forbidden("Not allowed on behalf of someone else", code="delegation_not_allowed")
    if not can_grant(principal.role, Role(user.role)):
        raise Forbidden("You cannot reset the MFA of an account above your role", code="role_above_own")
    if principal.actor.id == user.id or principal.user_id == user.id:
        raise Forbidden("Ask another admin to reset your own MFA", code="self_mfa_reset")
    return principal.actor.id


async def pending_for(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID
) -> MfaResetRequest | None:
    user = await managed_user(session, principal=principal, user_id=user_id)
    return (
        await session.execute(
            select(MfaResetRequest).where(
                MfaResetRequest.user_id == user.id,
                MfaResetRequest.status == "pending",
                MfaResetRequest.expires_at > utcnow(),
            )
        )
    ).scalar_one_or_none()


async def list_pending(session: AsyncSession, *, principal: Principal, limit: int) -> list[MfaResetRequest]:
    """Open requests for accounts of the principal's subtree, oldest first (what waits longest)."""
    query = (
        select(MfaResetRequest)
        .join(User, User.id == MfaResetRequest.user_id)
        .join(Unit, Unit.id == User.unit_id)
        .where(MfaResetRequest.status == "pending", MfaResetRequest.expires_at > utcnow())
        .order_by(MfaResetRequest.requested_at)
        .limit(limit)
    )
    if not principal.sees_all_units:
        query = query.where(Unit.path.startswith(principal.unit_path, autoescape=True))
    return list((await session.execute(query)).scalars())


async def request_reset(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, reason: str | None
) -> MfaResetRequest:
    """The first admin's half: nothing changes for the account until another admin confirms."""
    user = await managed_user(session, principal=principal, user_id=user_id)
    requester_id = _admin_over(principal, user)
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
        requested_by_id=requester_id,
        reason=reason,
        requested_at=now,
        expires_at=now + REQUEST_TTL,
        status="pending",
    )
    session.add(request)
    await flush_unique(
        session,
        conflict=Conflict("An MFA reset is already waiting for confirmation", code="mfa_reset_pending"),
    )
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
    user = await managed_user(session, principal=principal, user_id=request.user_id)  # 404 outside
    if request.status != "pending" or request.expires_at <= utcnow():
        raise Conflict("This MFA reset request is no longer open", code="mfa_reset_closed")
    return request, user


async def confirm_reset(session: AsyncSession, *, principal: Principal, request_id: uuid.UUID) -> User:
    """The second admin's half (fresh step-up): the account's TOTP, recovery codes and passkeys go."""
    request, user = await _open_request(session, principal=principal, request_id=request_id)
    confirmer_id = _admin_over(principal, user)
    if confirmer_id == request.requested_by_id or principal.user_id == request.requested_by_id:
        raise Forbidden("A second admin must confirm this reset", code="second_admin_required")
    require_fresh_step_up(principal)
    now = utcnow()
    request.status, request.decided_by_id, request.decided_at = "confirmed", confirmer_id, now
    passkeys_removed = await mfa.reset(session, user=user)
    await revoke_all_sessions(session, user=user, reason="mfa_reset")
    audit.record(
        session,
        action="mfa_reset.confirmed",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={
            "request_id": str(request.id),
            "requested_by": str(request.requested_by_id),
            "passkeys_removed": passkeys_removed,
        },
    )
    return user


async def cancel_reset(
    session: AsyncSession, *, principal: Principal, request_id: uuid.UUID
) -> MfaResetRequest:
    """Either admin (or any other who may manage the account) withdraws an open request."""
    request, user = await _open_request(session, principal=principal, request_id=request_id)
    actor_id = _admin_over(principal, user)
    request.status, request.decided_by_id, request.decided_at = "cancelled", actor_id, utcnow()
    audit.record(
        session,
        action="mfa_reset.cancelled",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={"request_id": str(request.id)},
    )
    return request
