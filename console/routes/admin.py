"""Accounts of the admin's subtree: list, create, role, disable/enable, unlock, sessions, passkeys
(list, revoke one), and the two-admin MFA reset (auth/mfa_reset.py, shared with the API). Each
action is the API's service call behind the API's permission; the use cases themselves check
subtree, step-up and four eyes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from api.deps import Require, SessionDep
from auth import account_sessions, mfa_reset, passkey_admin
from auth import units as unit_service
from auth import users as user_service
from auth.principal import Principal
from auth.roles import Permission, Role, can_grant
from auth.schemas import UserCreate, UserUpdate
from console.forms import invalid, see_other, step_up
from console.security import verify_csrf
from console.templating import is_htmx, render
from tracking import fields

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.USERS_READ))
Writer = Depends(Require(Permission.USERS_WRITE))
Unlocker = Depends(Require(Permission.USERS_UNLOCK))
SessionManager = Depends(Require(Permission.SESSIONS_MANAGE))
Text = Annotated[str, Form(max_length=255)]
Code = Annotated[str, Form(max_length=32)]


def _grantable(principal: Principal) -> list[Role]:
    assert principal.role is not None
    return [role for role in Role if can_grant(principal.role, role)]


@router.get("/users")
async def users_page(
    request: Request,
    session: SessionDep,
    q: str = "",
    role: str = "",
    active: str = "",
    cursor: str = "",
    principal: Principal = Reader,
) -> Response:
    users, next_cursor = await user_service.list_users(
        session,
        principal=principal,
        limit=50,
        cursor=cursor[:512] or None,
        unit_id=None,
        role=Role(role) if role in {r.value for r in Role} else None,
        active={"yes": True, "no": False}.get(active),
        query_text=q[:100] or None,
    )
    rows = [await user_service.to_out(session, u, reveal_personal=False) for u in users]
    context = {
        "users": rows,
        "next_cursor": next_cursor,
        "filters": {"q": q, "role": role, "active": active},
        "roles": list(Role),
    }
    template = "admin/_users_table.html" if is_htmx(request) else "admin/users.html"
    return render(request, template, context, principal=principal)


@router.get("/users/new")
async def new_user_page(request: Request, session: SessionDep, principal: Principal = Writer) -> Response:
    units = await unit_service.list_units(session, principal=principal, limit=500, after_path=None)
    return render(
        request, "admin/user_new.html", {"units": units, "roles": _grantable(principal)}, principal=principal
    )


@router.post("/users/new")
async def create_user(
    request: Request,
    session: SessionDep,
    username: Text,
    full_name: Text,
    unit_id: Annotated[uuid.UUID, Form()],
    role: Annotated[Role, Form()],
    password: Annotated[str, Form(max_length=256)],
    position: Text = "",
    email: Text = "",
    totp_code: Code = "",
    principal: Principal = Writer,
) -> Response:
    try:
        body = UserCreate(
            username=username,
            full_name=full_name,
            position=position or None,
            unit_id=unit_id,
            role=role,
            email=email or None,
            password=password,
        )
    except ValidationError as exc:
        raise invalid(exc) from None
    if body.role in user_service.ADMIN_ROLES:
        await step_up(request, session, principal, totp_code)
    user = await user_service.create_user(session, principal=principal, body=body)
    return see_other(f"/admin/users/{user.id}?done=created")


@router.get("/users/{user_id}")
async def user_page(
    request: Request, user_id: uuid.UUID, session: SessionDep, done: str = "", principal: Principal = Reader
) -> Response:
    user = await user_service.get_user(session, principal=principal, user_id=user_id)
    sessions = (
        await account_sessions.sessions_of(session, principal=principal, user_id=user.id)
        if principal.has(Permission.SESSIONS_MANAGE)
        else []
    )
    pending = await mfa_reset.pending_for(session, principal=principal, user_id=user.id)
    keys = await passkey_admin.list_for(session, principal=principal, user_id=user.id)
    # D-16: a leader's fields of responsibility (console/routes/fields.py saves the form).
    leader = user.role == Role.LEADER.value
    return render(
        request,
        "admin/user.html",
        {
            "user": await user_service.to_out(session, user, reveal_personal=False),
            "sessions": sessions,
            "pending_reset": pending,
            "passkeys": keys,
            "roles": _grantable(principal),
            "done": done,
            "fields": await fields.list_fields(session) if leader else [],
            "leader_fields": {f.code for f in await fields.fields_of_leader(session, user_id=user.id)}
            if leader
            else set(),
        },
        principal=principal,
    )


@router.post("/users/{user_id}/disable")
async def disable_user(user_id: uuid.UUID, session: SessionDep, principal: Principal = Writer) -> Response:
    await user_service.set_active(session, principal=principal, user_id=user_id, active=False)
    return see_other(f"/admin/users/{user_id}?done=disabled")


@router.post("/users/{user_id}/enable")
async def enable_user(user_id: uuid.UUID, session: SessionDep, principal: Principal = Writer) -> Response:
    await user_service.set_active(session, principal=principal, user_id=user_id, active=True)
    return see_other(f"/admin/users/{user_id}?done=enabled")


@router.post("/users/{user_id}/unlock")
async def unlock_user(user_id: uuid.UUID, session: SessionDep, principal: Principal = Unlocker) -> Response:
    await user_service.unlock_user(session, principal=principal, user_id=user_id)
    return see_other(f"/admin/users/{user_id}?done=unlocked")


@router.post("/users/{user_id}/role")
async def change_role(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    role: Annotated[Role, Form()],
    totp_code: Code = "",
    principal: Principal = Writer,
) -> Response:
    """Granting an admin role needs a step-up, as in ``PATCH /v1/users/{id}``."""
    if role in user_service.ADMIN_ROLES:
        await step_up(request, session, principal, totp_code)
    await user_service.update_user(session, principal=principal, user_id=user_id, body=UserUpdate(role=role))
    return see_other(f"/admin/users/{user_id}?done=role")


@router.post("/users/{user_id}/passkeys/{passkey_id}/revoke")
async def revoke_passkey(
    request: Request,
    user_id: uuid.UUID,
    passkey_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    principal: Principal = Writer,
) -> Response:
    """A lost or stolen key (fresh step-up), as ``DELETE /v1/users/{id}/passkeys/{passkey_id}``."""
    await step_up(request, session, principal, totp_code)
    await passkey_admin.revoke_for(session, principal=principal, user_id=user_id, passkey_id=passkey_id)
    return see_other(f"/admin/users/{user_id}?done=passkey_revoked")


@router.post("/users/{user_id}/sessions/revoke-all")
async def revoke_sessions(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = SessionManager
) -> Response:
    await account_sessions.end_all_sessions_of(session, principal=principal, user_id=user_id)
    return see_other(f"/admin/users/{user_id}?done=signed_out")


@router.post("/users/{user_id}/mfa-reset")
async def request_mfa_reset(
    user_id: uuid.UUID,
    session: SessionDep,
    reason: Annotated[str, Form(max_length=500)] = "",
    principal: Principal = Writer,
) -> Response:
    await mfa_reset.request_reset(
        session, principal=principal, user_id=user_id, reason=reason.strip() or None
    )
    return see_other(f"/admin/users/{user_id}?done=mfa_reset_requested")


@router.post("/mfa-resets/{request_id}/confirm")
async def confirm_mfa_reset(
    request: Request,
    request_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    principal: Principal = Writer,
) -> Response:
    await step_up(request, session, principal, totp_code)
    user = await mfa_reset.confirm_reset(session, principal=principal, request_id=request_id)
    return see_other(f"/admin/users/{user.id}?done=mfa_reset")


@router.post("/mfa-resets/{request_id}/cancel")
async def cancel_mfa_reset(
    request_id: uuid.UUID,
    session: SessionDep,
    user_id: Annotated[uuid.UUID, Form()],
    principal: Principal = Writer,
) -> Response:
    await mfa_reset.cancel_reset(session, principal=principal, request_id=request_id)
    return see_other(f"/admin/users/{user_id}?done=mfa_reset_cancelled")
