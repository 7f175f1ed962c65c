"""Delegations (D-24): a leader lets an assistant act on their behalf."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from api.deps import OwnAccount, SessionDep, require
from auth import delegations as delegation_service
from auth.principal import Principal
from auth.roles import Permission
from auth.schemas import DelegationCreate, DelegationOut

router = APIRouter(tags=["delegations"])


@router.post("", response_model=DelegationOut, status_code=status.HTTP_201_CREATED)
async def grant_delegation(
    body: DelegationCreate,
    session: SessionDep,
    principal: Principal = require(Permission.DELEGATIONS_GRANT, step_up=True, allow_delegated=False),
) -> DelegationOut:
    """The delegate then sends ``X-On-Behalf-Of: <delegation id>`` with its own token."""
    delegation = await delegation_service.grant(
        session,
        principal=principal,
        delegate_id=body.delegate_id,
        permissions=body.permissions,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    return DelegationOut.model_validate(delegation)


@router.get("", response_model=list[DelegationOut])
async def list_delegations(session: SessionDep, principal: Principal = OwnAccount) -> list[DelegationOut]:
    """Delegations the caller granted or received."""
    assert principal.actor is not None
    rows = await delegation_service.list_for(session, user_id=principal.actor.id)
    return [DelegationOut.model_validate(row) for row in rows]


@router.delete("/{delegation_id}", response_model=DelegationOut)
async def revoke_delegation(
    delegation_id: uuid.UUID, session: SessionDep, principal: Principal = OwnAccount
) -> DelegationOut:
    """Either side may end a delegation."""
    delegation = await delegation_service.revoke(session, principal=principal, delegation_id=delegation_id)
    return DelegationOut.model_validate(delegation)
