"""API clients (create, rotate, suspend/restore) and the caller's own delegations.

Keys appear once, in the response to the action that made them, exactly like the API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Authenticated, OwnAccount, Require, SessionDep
from auth import api_clients as client_service
from auth import delegations as delegation_service
from auth import units as unit_service
from auth import users as user_service
from auth.api_client_schemas import ApiClientCreate, RotateRequest
from auth.api_clients import ApiScope
from auth.principal import Principal
from auth.roles import NON_DELEGABLE, Permission
from auth.schemas import DelegationCreate
from console.forms import invalid, see_other, step_up
from console.security import verify_csrf
from console.templating import render
from core.db import utcnow

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

ClientAdmin = Depends(Require(Permission.API_CLIENTS_MANAGE))
Delegator = Depends(Require(Permission.DELEGATIONS_GRANT, allow_delegated=False))
Code = Annotated[str, Form(max_length=32)]


async def _clients_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    new_key: str | None = None,
    done: str = "",
) -> Response:
    clients, _next = await client_service.list_clients(
        session, principal=principal, limit=200, cursor=None, unit_id=None
    )
    units = await unit_service.list_units(session, principal=principal, limit=500, after_path=None)
    return render(
        request,
        "admin/api_clients.html",
        {"clients": clients, "units": units, "scopes": list(ApiScope), "new_key": new_key, "done": done},
        principal=principal,
    )


@router.get("/admin/api-clients")
async def clients_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = ClientAdmin
) -> Response:
    return await _clients_page(request, session, principal, done=done)


@router.post("/admin/api-clients")
async def create_client(
    request: Request,
    session: SessionDep,
    name: Annotated[str, Form(max_length=255)],
    unit_id: Annotated[uuid.UUID, Form()],
    scopes: Annotated[list[str], Form()],
    ip_allowlist: Annotated[str, Form(max_length=4000)] = "",
    totp_code: Code = "",
    principal: Principal = ClientAdmin,
) -> Response:
    """Managing API clients needs a step-up, as in the API (``Manage`` policy)."""
    try:
        body = ApiClientCreate(
            unit_id=unit_id,
            name=name,
            scopes=[ApiScope(s) for s in scopes if s in ApiScope.__members__.values()],
            ip_allowlist=[line.strip() for line in ip_allowlist.splitlines() if line.strip()],
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    await step_up(request, session, principal, totp_code)
    client, key = await client_service.create_client(
        session,
        principal=principal,
        unit_id=body.unit_id,
        name=body.name,
        scopes=body.scopes,
        ip_allowlist=body.ip_allowlist,
    )
    return await _clients_page(request, session, principal, new_key=f"{client.name}: {key}")


@router.post("/admin/api-clients/{client_id}/rotate")
async def rotate_client(
    request: Request,
    client_id: uuid.UUID,
    session: SessionDep,
    grace_hours: Annotated[int, Form(ge=0, le=168)] = 24,
    totp_code: Code = "",
    principal: Principal = ClientAdmin,
) -> Response:
    body = RotateRequest(grace_seconds=grace_hours * 3600)
    await step_up(request, session, principal, totp_code)
    client, key = await client_service.rotate(
        session, principal=principal, client_id=client_id, grace_seconds=body.grace_seconds
    )
    return await _clients_page(request, session, principal, new_key=f"{client.name}: {key}")


@router.post("/admin/api-clients/{client_id}/suspend")
async def suspend_client(
    request: Request,
    client_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    principal: Principal = ClientAdmin,
) -> Response:
    await step_up(request, session, principal, totp_code)
    await client_service.set_status(session, principal=principal, client_id=client_id, suspended=True)
    return see_other("/admin/api-clients?done=suspended")


@router.post("/admin/api-clients/{client_id}/restore")
async def restore_client(
    request: Request,
    client_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    principal: Principal = ClientAdmin,
) -> Response:
    await step_up(request, session, principal, totp_code)
    await client_service.set_status(session, principal=principal, client_id=client_id, suspended=False)
    return see_other("/admin/api-clients?done=restored")


@router.get("/delegations")
async def delegations_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = OwnAccount
) -> Response:
    assert principal.actor is not None
    delegations = await delegation_service.list_for(session, user_id=principal.actor.id)
    delegable = sorted(p.value for p in principal.permissions - NON_DELEGABLE)
    return render(
        request,
        "delegations.html",
        {"delegations": delegations, "delegable": delegable, "done": done, "now": utcnow()},
        principal=principal,
    )


@router.post("/delegations")
async def grant_delegation(
    request: Request,
    session: SessionDep,
    delegate_username: Annotated[str, Form(max_length=64)],
    permissions: Annotated[list[str], Form()],
    days: Annotated[int, Form(ge=1, le=366)] = 30,
    reason: Annotated[str, Form(max_length=500)] = "",
    totp_code: Code = "",
    principal: Principal = Delegator,
) -> Response:
    """The delegate is named by username and looked up inside the caller's subtree."""
    found, _next = await user_service.list_users(
        session,
        principal=principal,
        limit=2,
        cursor=None,
        unit_id=None,
        role=None,
        active=None,
        query_text=delegate_username.strip().lower(),
    )
    delegate = next((u for u in found if u.username == delegate_username.strip().lower()), None)
    try:
        body = DelegationCreate(
            delegate_id=delegate.id if delegate else uuid.uuid4(),
            permissions=[Permission(p) for p in permissions if p in Permission.__members__.values()],
            expires_at=utcnow() + dt.timedelta(days=days),
            reason=reason.strip() or None,
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    await step_up(request, session, principal, totp_code)
    await delegation_service.grant(
        session,
        principal=principal,
        delegate_id=body.delegate_id,
        permissions=body.permissions,
        expires_at=body.expires_at,
        reason=body.reason,
    )
    return see_other("/delegations?done=granted")


@router.post("/delegations/{delegation_id}/revoke")
async def revoke_delegation(
    delegation_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = Depends(Authenticated(allow_delegated=False)),
) -> Response:
    await delegation_service.revoke(session, principal=principal, delegation_id=delegation_id)
    return see_other("/delegations?done=revoked")
