"""Listing and ending an account's sign-in sessions: one's own (any signed-in user) and another
account's (an admin holding ``sessions:manage``, within their subtree).

The use cases behind ``/v1/auth/sessions``, ``/v1/users/{id}/sessions`` and the console's session
pages, so both transports list and end sessions the same way and audit it the same way.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth import users as user_service
from auth.models import AuthSession, User
from auth.principal import Principal
from auth.schemas import SessionOut
from auth.sessions import live_sessions, revoke_all_sessions, revoke_session_family
from core.db import utcnow
from core.errors import NotFound

# The newest first; an account has a handful, a list longer than this is not read by anyone.
_LISTED = 100


async def _listed(session: AsyncSession, *, user: User) -> list[AuthSession]:
    rows = await session.scalars(
        live_sessions(user=user, now=utcnow())  # not past the role's limits either
        .order_by(AuthSession.last_seen_at.desc())
        .limit(_LISTED)
    )
    return list(rows)


async def _session_of(session: AsyncSession, *, user: User, session_id: uuid.UUID) -> AuthSession:
    target = await session.get(AuthSession, session_id)
    if target is None or target.user_id != user.id:
        raise NotFound("Session not found")
    return target


async def own_sessions(session: AsyncSession, *, principal: Principal) -> list[SessionOut]:
    """The caller's live sessions; the one making this request is marked ``current``."""
    assert principal.actor is not None and principal.session is not None
    current = principal.session.id
    return [
        SessionOut.model_validate(row).model_copy(update={"current": row.id == current})
        for row in await _listed(session, user=principal.actor)
    ]


async def end_own_session(session: AsyncSession, *, principal: Principal, session_id: uuid.UUID) -> None:
    assert principal.actor is not None
    target = await _session_of(session, user=principal.actor, session_id=session_id)
    await revoke_session_family(session, session_id=target.id, reason="ended_by_user")
    audit.record(session, action="session.ended", object_type="session", object_id=target.id)


async def end_all_own_sessions(session: AsyncSession, *, principal: Principal) -> None:
    """Every session of the caller, the current one included."""
    assert principal.actor is not None
    await revoke_all_sessions(session, user=principal.actor, reason="signed_out_everywhere")
    audit.record(session, action="session.revoked_all", object_type="user", object_id=principal.actor.id)


async def sessions_of(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> list[SessionOut]:
    """Another account's live sessions (the account must be in the caller's subtree)."""
    user = await user_service.get_user(session, principal=principal, user_id=user_id)
    return [SessionOut.model_validate(row) for row in await _listed(session, user=user)]


async def end_session_of(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, session_id: uuid.UUID
) -> None:
    user = await user_service.get_user(session, principal=principal, user_id=user_id)
    target = await _session_of(session, user=user, session_id=session_id)
    await revoke_session_family(session, session_id=target.id, reason="ended_by_admin")
    audit.record(
        session, action="session.ended", object_type="session", object_id=target.id, unit_id=user.unit_id
    )


async def end_all_sessions_of(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> None:
    user = await user_service.get_user(session, principal=principal, user_id=user_id)
    await revoke_all_sessions(session, user=user, reason="revoked_by_admin")
    audit.record(
        session, action="session.revoked_all", object_type="user", object_id=user.id, unit_id=user.unit_id
    )
