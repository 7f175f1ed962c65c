"""Every door of every sensitive action applies the same policy (docs/security.md "Sensitive
actions and their doors"). One case per door: the actor holds the permission and manages the
object, but their step-up has gone stale, so the door must refuse with ``step_up_required``;
and the use case itself refuses a stale principal, so a door added later cannot skip it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from auth import api_clients, delegations, mfa_reset, passkey_admin
from auth import users as user_service
from auth.api_clients import ApiScope
from auth.models import AuthSession, Unit, User
from auth.principal import Principal
from auth.roles import Permission, Role, permissions_of
from auth.schemas import UserCreate, UserUpdate
from core import clock
from core.db import transaction, utcnow
from core.errors import Forbidden
from news import workflow
from tests.console.support import console_sign_in
from tests.news.helpers import make_desk, submitted
from tests.support.factories import Account, make_account, make_unit, sign_in
from tests.support.soft_authenticator import SoftAuthenticator

PASSWORD = "a brand new passphrase 7"


@pytest.fixture
async def console(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.23", 52003))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


@dataclass
class Call:
    """Who knocks at which door with what: ``json`` for the API, ``form`` for the console."""

    actor: Account
    method: str
    path: str
    body: dict[str, Any]


Prepare = Callable[[httpx.AsyncClient], Awaitable[Call]]


async def _admin_and_editor() -> tuple[Unit, Account, Account]:
    unit = await make_unit()
    return (
        unit,
        await make_account(role=Role.UNIT_ADMIN, unit=unit),
        await make_account(role=Role.EDITOR, unit=unit),
    )


def _new_admin(unit: Unit) -> dict[str, Any]:
    name = f"admin{uuid.uuid4().hex[:6]}"
    return {
        "username": name,
        "full_name": "Quản trị",
        "unit_id": str(unit.id),
        "role": "unit_admin",
        "password": PASSWORD,
    }


async def _api_client(
    client: httpx.AsyncClient, admin: Account, unit: Unit, *, suspended: bool = False
) -> str:
    headers = await sign_in(client, admin)
    body = {"unit_id": str(unit.id), "name": "CMS", "scopes": ["notifications:send"]}
    created = await client.post("/v1/api-clients", json=body, headers=headers)
    assert created.status_code == 201, created.text
    if suspended:
        assert (
            await client.post(f"/v1/api-clients/{created.json()['id']}/suspend", headers=headers)
        ).status_code == 200
    return str(created.json()["id"])


async def _pending_mfa_reset(client: httpx.AsyncClient) -> tuple[Account, str]:
    """A reset filed by one admin; returns the other admin (who may confirm) and the request."""
    unit, first, editor = await _admin_and_editor()
    second = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    filed = await client.post(
        f"/v1/users/{editor.id}/mfa-reset", headers=await sign_in(client, first), json={}
    )
    assert filed.status_code == 201, filed.text
    return second, str(filed.json()["id"])


async def _sending_item(client: httpx.AsyncClient) -> tuple[Account, str]:
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    approved = await client.post(f"/v1/news/{item_id}/approve", headers=desk.headers["publisher"], json={})
    assert approved.status_code == 200, approved.text
    return desk.other_publisher, item_id


async def _submitted_item(client: httpx.AsyncClient) -> tuple[Account, str]:
    desk = await make_desk(client)
    return desk.publisher, await submitted(client, desk)


async def _leader_and_assistant() -> tuple[Account, Account]:
    unit = await make_unit()
    return await make_account(role=Role.LEADER, unit=unit), await make_account(role=Role.MEMBER, unit=unit)


async def _with_passkey(client: httpx.AsyncClient, role: Role) -> tuple[Unit, Account, str]:
    """An account of ``role`` holding one passkey (enrolled through the API with the software
    authenticator), and the passkey's id."""
    unit = await make_unit()
    holder = await make_account(role=role, unit=unit)
    headers = await sign_in(client, holder)
    options = (await client.post("/v1/auth/passkeys/registration/options", headers=headers)).json()
    credential = SoftAuthenticator().create(options["options"])
    done = await client.post(
        "/v1/auth/passkeys/registration",
        headers=headers,
        json={"ceremony_id": options["ceremony_id"], "name": "key", "credential": credential},
    )
    assert done.status_code == 201, done.text
    return unit, holder, str(done.json()["id"])


def _in_a_week() -> str:
    return (clock.utcnow() + dt.timedelta(days=7)).isoformat()


# --- the API's doors ---


async def api_create_admin(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(admin, "POST", "/v1/users", _new_admin(unit))


async def api_promote_to_admin(client: httpx.AsyncClient) -> Call:
    _, admin, editor = await _admin_and_editor()
    return Call(admin, "PATCH", f"/v1/users/{editor.id}", {"role": "unit_admin"})


async def api_reset_password(client: httpx.AsyncClient) -> Call:
    _, admin, editor = await _admin_and_editor()
    body = {"new_password": PASSWORD, "reset_mfa": False}
    return Call(admin, "POST", f"/v1/users/{editor.id}/reset-credentials", body)


async def api_confirm_mfa_reset(client: httpx.AsyncClient) -> Call:
    second, request_id = await _pending_mfa_reset(client)
    return Call(second, "POST", f"/v1/mfa-resets/{request_id}/confirm", {})


async def api_create_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(
        admin,
        "POST",
        "/v1/api-clients",
        {"unit_id": str(unit.id), "name": "CMS", "scopes": ["notifications:send"]},
    )


async def api_update_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(
        admin, "PATCH", f"/v1/api-clients/{await _api_client(client, admin, unit)}", {"name": "CMS 2"}
    )


async def api_rotate_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(admin, "POST", f"/v1/api-clients/{await _api_client(client, admin, unit)}/rotate", {})


async def api_suspend_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(admin, "POST", f"/v1/api-clients/{await _api_client(client, admin, unit)}/suspend", {})


async def api_restore_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    client_id = await _api_client(client, admin, unit, suspended=True)
    return Call(admin, "POST", f"/v1/api-clients/{client_id}/restore", {})


async def api_grant_delegation(client: httpx.AsyncClient) -> Call:
    leader, assistant = await _leader_and_assistant()
    body = {"delegate_id": str(assistant.id), "permissions": ["dashboard:read"], "expires_at": _in_a_week()}
    return Call(leader, "POST", "/v1/delegations", body)


async def api_approve_news(client: httpx.AsyncClient) -> Call:
    publisher, item_id = await _submitted_item(client)
    return Call(publisher, "POST", f"/v1/news/{item_id}/approve", {})


async def api_recall_news(client: httpx.AsyncClient) -> Call:
    publisher, item_id = await _sending_item(client)
    return Call(publisher, "POST", f"/v1/news/{item_id}/recall", {"reason": "sai thông tin"})


async def api_sms_degraded_mode(client: httpx.AsyncClient) -> Call:
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    return Call(admin, "PUT", "/v1/sms/degraded-mode", {"enabled": True, "reason": "FCM outage"})


async def api_revoke_someones_passkey(client: httpx.AsyncClient) -> Call:
    unit, leader, passkey_id = await _with_passkey(client, Role.LEADER)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    return Call(admin, "DELETE", f"/v1/users/{leader.id}/passkeys/{passkey_id}", {})


async def api_revoke_own_passkey(client: httpx.AsyncClient) -> Call:
    # An editor: a leader holding a passkey could not sign in with the code this test uses.
    _, editor, passkey_id = await _with_passkey(client, Role.EDITOR)
    return Call(editor, "DELETE", f"/v1/auth/passkeys/{passkey_id}", {})


async def api_add_passkey(client: httpx.AsyncClient) -> Call:
    _, _, editor = await _admin_and_editor()
    return Call(editor, "POST", "/v1/auth/passkeys/registration/options", {})


async def api_reset_push_breaker(client: httpx.AsyncClient) -> Call:
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    return Call(admin, "POST", "/v1/sms/breakers/fcm/reset", {"reason": "FCM recovered"})


API_DOORS: list[Prepare] = [
    api_create_admin,
    api_promote_to_admin,
    api_reset_password,
    api_confirm_mfa_reset,
    api_create_api_client,
    api_update_api_client,
    api_rotate_api_client,
    api_suspend_api_client,
    api_restore_api_client,
    api_grant_delegation,
    api_approve_news,
    api_recall_news,
    api_sms_degraded_mode,
    api_revoke_someones_passkey,
    api_revoke_own_passkey,
    api_add_passkey,
    api_reset_push_breaker,
]


# --- the console's doors (no totp_code in the form: the step-up must come from the session) ---


async def console_create_admin(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(admin, "POST", "/console/admin/users/new", _new_admin(unit))


async def console_promote_to_admin(client: httpx.AsyncClient) -> Call:
    _, admin, editor = await _admin_and_editor()
    return Call(admin, "POST", f"/console/admin/users/{editor.id}/role", {"role": "unit_admin"})


async def console_confirm_mfa_reset(client: httpx.AsyncClient) -> Call:
    second, request_id = await _pending_mfa_reset(client)
    return Call(second, "POST", f"/console/admin/mfa-resets/{request_id}/confirm", {})


async def console_create_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    form = {"name": "CMS", "unit_id": str(unit.id), "scopes": "notifications:send"}
    return Call(admin, "POST", "/console/admin/api-clients", form)


async def console_rotate_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(
        admin, "POST", f"/console/admin/api-clients/{await _api_client(client, admin, unit)}/rotate", {}
    )


async def console_suspend_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    return Call(
        admin, "POST", f"/console/admin/api-clients/{await _api_client(client, admin, unit)}/suspend", {}
    )


async def console_restore_api_client(client: httpx.AsyncClient) -> Call:
    unit, admin, _ = await _admin_and_editor()
    client_id = await _api_client(client, admin, unit, suspended=True)
    return Call(admin, "POST", f"/console/admin/api-clients/{client_id}/restore", {})


async def console_grant_delegation(client: httpx.AsyncClient) -> Call:
    leader, assistant = await _leader_and_assistant()
    form = {"delegate_username": assistant.username, "permissions": "dashboard:read", "days": "7"}
    return Call(leader, "POST", "/console/delegations", form)


async def console_approve_news(client: httpx.AsyncClient) -> Call:
    publisher, item_id = await _submitted_item(client)
    return Call(publisher, "POST", f"/console/news/{item_id}/approve", {})


async def console_recall_news(client: httpx.AsyncClient) -> Call:
    publisher, item_id = await _sending_item(client)
    return Call(publisher, "POST", f"/console/news/{item_id}/recall", {"reason": "sai thông tin"})


async def console_revoke_someones_passkey(client: httpx.AsyncClient) -> Call:
    unit, leader, passkey_id = await _with_passkey(client, Role.LEADER)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    return Call(admin, "POST", f"/console/admin/users/{leader.id}/passkeys/{passkey_id}/revoke", {})


async def console_revoke_own_passkey(client: httpx.AsyncClient) -> Call:
    _, editor, passkey_id = await _with_passkey(client, Role.EDITOR)
    return Call(editor, "POST", f"/console/passkeys/{passkey_id}/revoke", {})


async def console_sms_degraded_mode(client: httpx.AsyncClient) -> Call:
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    form = {"enabled": "on", "reason": "FCM outage", "confirm": "yes"}
    return Call(admin, "POST", "/console/admin/sms/degraded-mode", form)


async def console_reset_push_breaker(client: httpx.AsyncClient) -> Call:
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    return Call(
        admin, "POST", "/console/admin/breakers/fcm/reset", {"reason": "FCM recovered", "confirm": "yes"}
    )


CONSOLE_DOORS: list[Prepare] = [
    console_create_admin,
    console_promote_to_admin,
    console_confirm_mfa_reset,
    console_create_api_client,
    console_rotate_api_client,
    console_suspend_api_client,
    console_restore_api_client,
    console_grant_delegation,
    console_approve_news,
    console_recall_news,
    console_revoke_someones_passkey,
    console_revoke_own_passkey,
    console_sms_degraded_mode,
    console_reset_push_breaker,
]


@pytest.mark.parametrize("prepare", API_DOORS, ids=lambda door: door.__name__)
async def test_every_api_door_of_a_sensitive_action_needs_a_fresh_step_up(client, prepare):
    call = await prepare(client)
    headers = await sign_in(client, call.actor)
    clock.advance(301)
    response = await client.request(call.method, call.path, json=call.body, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "step_up_required"


@pytest.mark.parametrize("prepare", CONSOLE_DOORS, ids=lambda door: door.__name__)
async def test_every_console_door_of_a_sensitive_action_needs_a_fresh_step_up(client, console, prepare):
    call = await prepare(client)
    token = await console_sign_in(console, call.actor)
    clock.advance(301)
    response = await console.request(call.method, call.path, data={"csrf_token": token, **call.body})
    assert response.status_code == 403, response.text
    assert "step_up_required" in response.text


# --- the use cases themselves: what any door (a later one included) calls ---


async def _stale_principal(account: Account) -> Principal:
    """The account as an authenticated principal whose last TOTP was 10 minutes ago."""
    async with transaction() as session:
        user = await session.get(User, account.id)
        unit = await session.get(Unit, account.unit_id)
        assert user is not None and unit is not None
        session.expunge_all()
    stale = AuthSession(id=uuid.uuid4(), user_id=user.id, mfa_verified_at=utcnow() - dt.timedelta(minutes=10))
    return Principal(
        permissions=permissions_of(account.role),
        unit_id=unit.id,
        unit_path=unit.path,
        user=user,
        actor=user,
        session=stale,
    )


async def _fresh(principal: Principal) -> Principal:
    return dataclasses.replace(principal, session=AuthSession(id=uuid.uuid4(), mfa_verified_at=utcnow()))


async def uc_create_admin(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, admin, _ = await _admin_and_editor()
    body = UserCreate.model_validate(_new_admin(unit))
    return admin, lambda session, p: user_service.create_user(session, principal=p, body=body)


async def uc_promote(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    _, admin, editor = await _admin_and_editor()
    body = UserUpdate(role=Role.UNIT_ADMIN)
    return admin, lambda session, p: user_service.update_user(
        session, principal=p, user_id=editor.id, body=body
    )


async def uc_reset_credentials(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    _, admin, editor = await _admin_and_editor()
    return admin, lambda session, p: user_service.reset_credentials(
        session, principal=p, user_id=editor.id, new_password=PASSWORD, reset_mfa=False
    )


async def uc_confirm_mfa_reset(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    second, request_id = await _pending_mfa_reset(client)
    return second, lambda session, p: mfa_reset.confirm_reset(
        session, principal=p, request_id=uuid.UUID(request_id)
    )


async def uc_create_api_client(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, admin, _ = await _admin_and_editor()
    return admin, lambda session, p: api_clients.create_client(
        session,
        principal=p,
        unit_id=unit.id,
        name="CMS",
        scopes=[ApiScope("notifications:send")],
        ip_allowlist=[],
    )


async def uc_rotate_api_client(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, admin, _ = await _admin_and_editor()
    client_id = uuid.UUID(await _api_client(client, admin, unit))
    return admin, lambda session, p: api_clients.rotate(
        session, principal=p, client_id=client_id, grace_seconds=0
    )


async def uc_suspend_api_client(
    client: httpx.AsyncClient,
) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, admin, _ = await _admin_and_editor()
    client_id = uuid.UUID(await _api_client(client, admin, unit))
    return admin, lambda session, p: api_clients.set_status(
        session, principal=p, client_id=client_id, suspended=True
    )


async def uc_update_api_client(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, admin, _ = await _admin_and_editor()
    client_id = uuid.UUID(await _api_client(client, admin, unit))
    return admin, lambda session, p: api_clients.update_client(
        session, principal=p, client_id=client_id, name="CMS 2", scopes=None, ip_allowlist=None
    )


async def uc_grant_delegation(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    leader, assistant = await _leader_and_assistant()
    expires = clock.utcnow() + dt.timedelta(days=7)
    return leader, lambda session, p: delegations.grant(
        session,
        principal=p,
        delegate_id=assistant.id,
        permissions=[Permission.DASHBOARD_READ],
        expires_at=expires,
        reason=None,
    )


async def uc_approve_news(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    publisher, item_id = await _submitted_item(client)
    return publisher, lambda session, p: workflow.approve(
        session, principal=p, item_id=uuid.UUID(item_id), send_at=None, reason=None
    )


async def uc_recall_news(client: httpx.AsyncClient) -> tuple[Account, Callable[..., Awaitable[object]]]:
    publisher, item_id = await _sending_item(client)
    return publisher, lambda session, p: workflow.recall(
        session, principal=p, item_id=uuid.UUID(item_id), reason="sai thông tin"
    )


async def uc_revoke_someones_passkey(
    client: httpx.AsyncClient,
) -> tuple[Account, Callable[..., Awaitable[object]]]:
    unit, leader, passkey_id = await _with_passkey(client, Role.LEADER)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    return admin, lambda session, p: passkey_admin.revoke_for(
        session, principal=p, user_id=leader.id, passkey_id=uuid.UUID(passkey_id)
    )


async def uc_revoke_own_passkey(
    client: httpx.AsyncClient,
) -> tuple[Account, Callable[..., Awaitable[object]]]:
    _, leader, passkey_id = await _with_passkey(client, Role.LEADER)
    return leader, lambda session, p: passkey_admin.revoke_own(
        session, principal=p, passkey_id=uuid.UUID(passkey_id)
    )


USE_CASES = [
    uc_create_admin,
    uc_promote,
    uc_reset_credentials,
    uc_confirm_mfa_reset,
    uc_create_api_client,
    uc_rotate_api_client,
    uc_suspend_api_client,
    uc_update_api_client,
    uc_grant_delegation,
    uc_approve_news,
    uc_recall_news,
    uc_revoke_someones_passkey,
    uc_revoke_own_passkey,
]


@pytest.mark.parametrize("prepare", USE_CASES, ids=lambda case: case.__name__)
async def test_every_sensitive_use_case_refuses_a_stale_step_up_whatever_the_door(client, prepare):
    actor, run = await prepare(client)
    stale = await _stale_principal(actor)
    with pytest.raises(Forbidden) as refused:
        async with transaction() as session:
            await run(session, stale)
    assert refused.value.code == "step_up_required"
    # The same call with a fresh step-up goes through: the refusal was the step-up, nothing else.
    async with transaction() as session:
        await run(session, await _fresh(stale))
