"""Accounts in the caller's subtree (admins), and ending other people's sessions."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from api.deps import SessionDep, ensure_step_up, require
from auth import account_sessions, audit, mfa_reset
from auth import users as user_service
from auth.mfa_reset_schemas import CredentialsResetOut, MfaResetRequestCreate, MfaResetRequestOut
from auth.principal import Principal
from auth.roles import Permission, Role
from auth.schemas import ResetCredentialsRequest, SessionOut, UserCreate, UserOut, UserUpdate
from auth.users import ADMIN_ROLES
from core.schemas import Page

router = APIRouter(tags=["users"])


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def create_user(
    body: UserCreate,
    request: Request,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE),
) -> UserOut:
    """The new holder must change the password at first sign-in and enrol TOTP (all but readers)."""
    if body.role in ADMIN_ROLES:
        await ensure_step_up(request, principal)
    user = await user_service.create_user(session, principal=principal, body=body)
    return await user_service.to_out(session, user, reveal_personal=True)


@router.get("", response_model=Page[UserOut])
async def list_users(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    unit_id: uuid.UUID | None = None,
    role: Role | None = None,
    active: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    principal: Principal = require(Permission.USERS_READ),
) -> Page[UserOut]:
    users, next_cursor = await user_service.list_users(
        session,
        principal=principal,
        limit=limit,
        cursor=cursor,
        unit_id=unit_id,
        role=role,
        active=active,
        query_text=q,
    )
    items = [await user_service.to_out(session, u, reveal_personal=False) for u in users]
    return Page[UserOut](items=items, next_cursor=next_cursor)


@router.get("/{user_id}", response_model=UserOut)
async def get_user(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_READ)
) -> UserOut:
    """Includes the decrypted phone and citizen ID; reading them is audited."""
    user = await user_service.get_user(session, principal=principal, user_id=user_id)
    audit.record(session, action="user.viewed", object_type="user", object_id=user.id, unit_id=user.unit_id)
    return await user_service.to_out(session, user, reveal_personal=True)


@router.patch("/{user_id}", response_model=UserOut)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    request: Request,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE),
) -> UserOut:
    """A change of role or unit ends every session of the user at once (D-23)."""
    if body.role in ADMIN_ROLES:
        await ensure_step_up(request, principal)
    user = await user_service.update_user(session, principal=principal, user_id=user_id, body=body)
    return await user_service.to_out(session, user, reveal_personal=True)


@router.post("/{user_id}/disable", response_model=UserOut)
async def disable_user(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_WRITE)
) -> UserOut:
    user = await user_service.set_active(session, principal=principal, user_id=user_id, active=False)
    return await user_service.to_out(session, user, reveal_personal=False)


@router.post("/{user_id}/enable", response_model=UserOut)
async def enable_user(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_WRITE)
) -> UserOut:
    user = await user_service.set_active(session, principal=principal, user_id=user_id, active=True)
    return await user_service.to_out(session, user, reveal_personal=False)


@router.post("/{user_id}/reset-credentials", response_model=CredentialsResetOut)
async def reset_credentials(
    user_id: uuid.UUID,
    body: ResetCredentialsRequest,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE, step_up=True),
) -> CredentialsResetOut:
    """When the holder of an account changes: a new password (changed at first sign-in) and all
    tokens end, at once. ``reset_mfa`` (default) also files an MFA reset request that **another
    admin** confirms (``POST /v1/mfa-resets/{id}/confirm``, fresh step-up); until then the
    account's second factor stays."""
    user, request = await user_service.reset_credentials(
        session,
        principal=principal,
        user_id=user_id,
        new_password=body.new_password,
        reset_mfa=body.reset_mfa,
        reason=body.reason,
    )
    out = await user_service.to_out(session, user, reveal_personal=False)
    pending = MfaResetRequestOut.model_validate(request) if request is not None else None
    return CredentialsResetOut(**out.model_dump(), mfa_reset_request=pending)


@router.post("/{user_id}/mfa-reset", response_model=MfaResetRequestOut, status_code=status.HTTP_201_CREATED)
async def request_mfa_reset(
    user_id: uuid.UUID,
    body: MfaResetRequestCreate,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE, allow_delegated=False),
) -> MfaResetRequestOut:
    """First half of the two-admin MFA reset: nothing changes until another admin confirms."""
    request = await mfa_reset.request_reset(session, principal=principal, user_id=user_id, reason=body.reason)
    return MfaResetRequestOut.model_validate(request)


@router.post("/{user_id}/unlock", response_model=UserOut)
async def unlock_user(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_UNLOCK)
) -> UserOut:
    user = await user_service.unlock_user(session, principal=principal, user_id=user_id)
    return await user_service.to_out(session, user, reveal_personal=False)


@router.get("/{user_id}/sessions", response_model=list[SessionOut])
async def list_user_sessions(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.SESSIONS_MANAGE)
) -> list[SessionOut]:
    return await account_sessions.sessions_of(session, principal=principal, user_id=user_id)


@router.delete("/{user_id}/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_user_session(
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require(Permission.SESSIONS_MANAGE),
) -> None:
    await account_sessions.end_session_of(
        session, principal=principal, user_id=user_id, session_id=session_id
    )


@router.post("/{user_id}/sessions/revoke-all", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_user_sessions(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.SESSIONS_MANAGE)
) -> None:
    await account_sessions.end_all_sessions_of(session, principal=principal, user_id=user_id)
