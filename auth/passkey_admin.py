"""Revoking passkeys as a sensitive action (docs/security.md "Sensitive actions and their doors"):
one's own (fresh step-up, as oneself), and an admin's view of someone's passkeys: list them,
revoke one (a lost or stolen key), with the same subtree and rank rules as every account action
(auth/managed.py, auth/roles.py ``can_grant``) and a fresh step-up. Losing every passkey is the
two-admin reset's (auth/mfa_reset.py), which removes them all with the TOTP secret."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import passkeys
from auth.managed import managed_user
from auth.models import WebauthnCredential
from auth.principal import Principal
from auth.roles import Role, can_grant
from auth.step_up import require_fresh_step_up
from core.errors import Forbidden


async def revoke_own(session: AsyncSession, *, principal: Principal, passkey_id: uuid.UUID) -> None:
    if principal.actor is None or principal.is_delegated:
        raise Forbidden("Only the holder revokes their own passkey", code="delegation_not_allowed")
    require_fresh_step_up(principal)
    await passkeys.revoke(session, user=principal.actor, passkey_id=passkey_id, by_admin=False)


async def list_for(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID
) -> list[WebauthnCredential]:
    user = await managed_user(session, principal=principal, user_id=user_id)  # 404 outside
    return await passkeys.credentials_of(session, user.id)


async def revoke_for(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, passkey_id: uuid.UUID
) -> None:
    user = await managed_user(session, principal=principal, user_id=user_id)
    if principal.role is None or not can_grant(principal.role, Role(user.role)):
        raise Forbidden(
            "You cannot change the credentials of an account above your role", code="role_above_own"
        )
    require_fresh_step_up(principal)
    await passkeys.revoke(session, user=user, passkey_id=passkey_id, by_admin=True)
