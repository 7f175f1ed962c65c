"""The second admin's side of the two-admin MFA reset (auth/mfa_reset.py): open requests of the
caller's subtree, confirm (fresh step-up, another admin than the requester), cancel. Requests are
filed with ``POST /v1/users/{id}/mfa-reset`` or ``reset-credentials`` with ``reset_mfa``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import SessionDep, require
from auth import mfa_reset
from auth import users as user_service
from auth.mfa_reset_schemas import MfaResetRequestOut
from auth.principal import Principal
from auth.roles import Permission
from auth.schemas import UserOut

router = APIRouter(tags=["users"])


@router.get("", response_model=list[MfaResetRequestOut])
async def list_pending_mfa_resets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require(Permission.USERS_WRITE),
) -> list[MfaResetRequestOut]:
    """Open requests for accounts of your subtree, oldest first."""
    requests = await mfa_reset.list_pending(session, principal=principal, limit=limit)
    return [MfaResetRequestOut.model_validate(request) for request in requests]


@router.post("/{request_id}/confirm", response_model=UserOut)
async def confirm_mfa_reset(
    request_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE, step_up=True, allow_delegated=False),
) -> UserOut:
    """Another admin than the requester, with a fresh step-up: the TOTP and recovery codes go and
    every session of the account ends; the holder enrols again at the next sign-in."""
    user = await mfa_reset.confirm_reset(session, principal=principal, request_id=request_id)
    return await user_service.to_out(session, user, reveal_personal=False)


@router.post("/{request_id}/cancel", response_model=MfaResetRequestOut)
async def cancel_mfa_reset(
    request_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE, allow_delegated=False),
) -> MfaResetRequestOut:
    request = await mfa_reset.cancel_reset(session, principal=principal, request_id=request_id)
    return MfaResetRequestOut.model_validate(request)
