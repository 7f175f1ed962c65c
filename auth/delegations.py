"""Delegation (D-24): a leader lets an assistant act on their behalf.

The assistant signs in with their own account (their own password and TOTP) and names the
delegation per request (``X-On-Behalf-Of`` header). Allowed = delegation scope ∩ the leader's
rights *now*, so demoting or disabling the leader narrows or ends the delegation at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Delegation, Unit, User
from auth.principal import Principal
from auth.roles import NON_DELEGABLE, Permission, Role, permissions_of
from auth.step_up import require_fresh_step_up
from core.db import utcnow
from core.errors import Forbidden, NotFound, Unprocessable

MAX_DELEGATION_DAYS = 366


async def grant(
    session: AsyncSession,
    *,
    principal: Principal,
    delegate_id: uuid.UUID,
    permissions: list[Permission],
    expires_at: dt.datetime,
    reason: str | None,
) -> Delegation:
    if principal.is_delegated:
        raise Forbidden("A delegate cannot delegate further", code="delegation_not_allowed")
    require_fresh_step_up(principal)
    leader = principal.user
    assert leader is not None
    now = utcnow()
    if expires_at.tzinfo is None:
        raise Unprocessable("expires_at needs a time zone", code="validation_error")
    if not now < expires_at <= now + dt.timedelta(days=MAX_DELEGATION_DAYS):
        raise Unprocessable(
            f"expires_at must be in the next {MAX_DELEGATION_DAYS} days", code="validation_error"
        )
    wanted = set(permissions)
    not_held = sorted(p.value for p in wanted - (principal.permissions - NON_DELEGABLE))
    if not_held:
        raise Forbidden(
            "You can only delegate permissions you hold",
            code="permission_not_delegable",
            details=[{"permission": p} for p in not_held],
        )
    row = (
        await session.execute(
            select(User, Unit.path).join(Unit, Unit.id == User.unit_id).where(User.id == delegate_id)
        )
    ).first()
    if row is None or not row.path.startswith(principal.unit_path) or row.User.id == leader.id:
        raise NotFound("Delegate not found in your unit")
    if not row.User.is_active:
        raise Unprocessable("The delegate account is disabled", code="delegate_disabled")
    delegation = Delegation(
        id=uuid.uuid4(),
        principal_id=leader.id,
        delegate_id=delegate_id,
        permissions=sorted(p.value for p in wanted),
        reason=reason,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(delegation)
    await session.flush()
    audit.record(
        session,
        action="delegation.granted",
        object_type="delegation",
        object_id=delegation.id,
        details={
            "delegate_id": str(delegate_id),
            "permissions": delegation.permissions,
            "expires_at": expires_at.isoformat(),
        },
    )
    return delegation


async def list_for(session: AsyncSession, *, user_id: uuid.UUID) -> list[Delegation]:
    query = (
        select(Delegation)
        .where(or_(Delegation.principal_id == user_id, Delegation.delegate_id == user_id))
        .order_by(Delegation.created_at.desc())
        .limit(200)
    )
    return list((await session.execute(query)).scalars())


async def revoke(session: AsyncSession, *, principal: Principal, delegation_id: uuid.UUID) -> Delegation:
    # Locked: of two revocations at once, the second finds it revoked (one audit row, one revoker).
    delegation = await session.get(Delegation, delegation_id, with_for_update=True, populate_existing=True)
    me = principal.actor.id if principal.actor else None
    if delegation is None or me not in (delegation.principal_id, delegation.delegate_id):
        raise NotFound("Delegation not found")
    if delegation.revoked_at is None:
        delegation.revoked_at = utcnow()
        delegation.revoked_by_id = me
        audit.record(session, action="delegation.revoked", object_type="delegation", object_id=delegation.id)
    return delegation


async def resolve(
    session: AsyncSession, *, delegate: User, delegation_id: uuid.UUID
) -> tuple[User, Delegation, frozenset[Permission], str]:
    """(leader, delegation, effective permissions, leader's unit path) for a delegate's request."""
    row = (
        await session.execute(
            select(Delegation, User, Unit.path)
            .join(User, User.id == Delegation.principal_id)
            .join(Unit, Unit.id == User.unit_id)
            .where(Delegation.id == delegation_id)
        )
    ).first()
    now = utcnow()
    if row is None or row.Delegation.delegate_id != delegate.id:
        raise Forbidden("No such delegation for you", code="delegation_invalid")
    delegation, leader, path = row
    if delegation.revoked_at is not None or delegation.expires_at <= now or not leader.is_active:
        raise Forbidden("This delegation has ended", code="delegation_invalid")
    granted = {Permission(p) for p in delegation.permissions if p in Permission._value2member_map_}
    effective = frozenset(granted & permissions_of(Role(leader.role))) - NON_DELEGABLE
    return leader, delegation, effective, path
