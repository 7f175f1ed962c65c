"""Admin actions over HTTP: role step-up, API clients, delegations."""

from __future__ import annotations

import re

from auth.roles import Role
from core import clock
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit


async def test_granting_an_admin_role_needs_a_fresh_code(console):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    token = await console_sign_in(console, admin)
    clock.advance(301)
    stale = await console.post(
        f"/console/admin/users/{editor.id}/role", data={"csrf_token": token, "role": "unit_admin"}
    )
    assert stale.status_code == 403 and "step_up_required" in stale.text
    wrong = await console.post(
        f"/console/admin/users/{editor.id}/role",
        data={"csrf_token": token, "role": "unit_admin", "totp_code": "000000"},
    )
    assert wrong.status_code == 403 and "step_up_failed" in wrong.text
    # A wrong step-up code does not end the admin's session.
    assert (await console.get("/console/home")).status_code == 200
    ok = await console.post(
        f"/console/admin/users/{editor.id}/role",
        data={"csrf_token": token, "role": "unit_admin", "totp_code": admin.code()},
    )
    assert ok.status_code == 303
    page = await console.get(f"/console/admin/users/{editor.id}")
    assert "unit_admin" in page.text
    # Above one's own role: refused by the service, whatever the code.
    above = await console.post(
        f"/console/admin/users/{editor.id}/role",
        data={"csrf_token": token, "role": "system_admin", "totp_code": admin.code()},
    )
    assert above.status_code == 403 and "role_above_own" in above.text


async def test_api_client_key_is_shown_once_and_suspension_takes_effect(console, client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    token = await console_sign_in(console, admin)
    created = await console.post(
        "/console/admin/api-clients",
        data={
            "csrf_token": token,
            "name": "CMS <portal>",
            "unit_id": str(unit.id),
            "scopes": "notifications:send",
            "totp_code": admin.code(),
        },
    )
    assert created.status_code == 200
    key = re.search(r"(chk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]+)", created.text)
    assert key, created.text[:2000]
    assert "CMS &lt;portal&gt;" in created.text
    listing = await console.get("/console/admin/api-clients")
    assert key.group(1) not in listing.text  # never shown again
    me = await client.get("/v1/api-clients/me", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert me.status_code == 200, me.text
    client_id = me.json()["id"]
    suspended = await console.post(
        f"/console/admin/api-clients/{client_id}/suspend",
        data={"csrf_token": token, "totp_code": admin.code()},
    )
    assert suspended.status_code == 303
    refused = await client.get("/v1/api-clients/me", headers={"Authorization": f"Bearer {key.group(1)}"})
    assert refused.status_code in (401, 403)


async def test_a_leader_grants_and_revokes_a_delegation(console):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    token = await console_sign_in(console, leader)
    granted = await console.post(
        "/console/delegations",
        data={
            "csrf_token": token,
            "delegate_username": assistant.username,
            "permissions": "tasks:read",
            "days": "7",
            "totp_code": leader.code(),
        },
    )
    assert granted.status_code == 303, granted.text
    page = await console.get("/console/delegations")
    assert "tasks:read" in page.text
    delegation_id = re.search(r"/console/delegations/([0-9a-f-]{36})/revoke", page.text)
    assert delegation_id
    revoked = await console.post(
        f"/console/delegations/{delegation_id.group(1)}/revoke", data={"csrf_token": token}
    )
    assert revoked.status_code == 303
    assert "/revoke" not in (await console.get("/console/delegations")).text
