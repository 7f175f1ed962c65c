"""Finding an account the caller manages: the one subtree rule of every account action
(``auth.users`` and ``auth.mfa_reset`` both build on it)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit, User
from auth.principal import Principal
from core.errors import NotFound


async def managed_user(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> User:
    """A user in the principal's subtree, or 404 (never 403: do not confirm that the id exists)."""
    row = (
        await session.execute(
            select(User, Unit.path).join(Unit, Unit.id == User.unit_id).where(User.id == user_id)
        )
    ).first()
    if row is None or not principal.can_manage_unit(row.path):
        raise NotFound("User not found")
    user: User = row.User
    return user
