"""Resetting someone's second factor takes two admins, through the API as through the console
(one use case, auth/mfa_reset.py). A password-only reset stays one admin's (with a step-up)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from auth.models import TotpCredential
from auth.roles import Role
from core import clock
from core.db import transaction
from tests.console.support import console_sign_in
from tests.support.factories import make_account, make_unit, sign_in

NEW_PASSWORD = "a brand new passphrase 7"


@pytest.fixture
async def console(app) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-holding client of the console (as tests/console/conftest.py's)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


async def _has_totp(user_id) -> bool:
    async with transaction() as session:
        found = await session.execute(select(TotpCredential).where(TotpCredential.user_id == user_id))
        return found.scalar_one_or_none() is not None


async def _login(client, account, password: str) -> int:
    body = {"username": account.username, "password": password, "totp_code": account.code()}
    return (await client.post("/v1/auth/login", json=body)).status_code


async def test_one_admin_resetting_credentials_only_requests_the_mfa_reset(client):
    unit = await make_unit()
    first = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    second = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    first_headers = await sign_in(client, first)
    reset = await client.post(
        f"/v1/users/{editor.id}/reset-credentials",
        headers=first_headers,
        json={"new_password": NEW_PASSWORD, "reason": "new holder"},  # reset_mfa defaults to true
    )
    assert reset.status_code == 200, reset.text
    pending = reset.json()["mfa_reset_request"]
    assert pending["status"] == "pending" and pending["requested_by_id"] == str(first.id)
    # The password changed at once; the second factor did not (on main it was deleted here).
    assert await _has_totp(editor.id)
    assert reset.json()["mfa_enrolled"] is True
    # The requester cannot confirm it; nor can they file a second one.
    own = await client.post(f"/v1/mfa-resets/{pending['id']}/confirm", headers=first_headers)
    assert own.status_code == 403 and own.json()["error"]["code"] == "second_admin_required"
    again = await client.post(f"/v1/users/{editor.id}/mfa-reset", headers=first_headers, json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "mfa_reset_pending"
    assert await _has_totp(editor.id)

    second_headers = await sign_in(client, second)
    listed = (await client.get("/v1/mfa-resets", headers=second_headers)).json()
    assert [r["id"] for r in listed] == [pending["id"]]
    clock.advance(301)  # the second admin's step-up has gone stale
    stale = await client.post(f"/v1/mfa-resets/{pending['id']}/confirm", headers=second_headers)
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"
    verified = await client.post("/v1/auth/mfa/verify", headers=second_headers, json={"code": second.code()})
    assert verified.status_code == 204
    confirmed = await client.post(f"/v1/mfa-resets/{pending['id']}/confirm", headers=second_headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["mfa_enrolled"] is False and not await _has_totp(editor.id)
    assert (await client.get("/v1/mfa-resets", headers=second_headers)).json() == []


async def test_a_password_only_reset_is_one_admins_and_keeps_the_second_factor(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    headers = await sign_in(client, admin)
    reset = await client.post(
        f"/v1/users/{editor.id}/reset-credentials",
        headers=headers,
        json={"new_password": NEW_PASSWORD, "reset_mfa": False},
    )
    assert reset.status_code == 200 and reset.json()["mfa_reset_request"] is None
    assert await _has_totp(editor.id)
    assert await _login(client, editor, editor.password) == 401
    clock.advance(31)  # the next TOTP step: a code is accepted once
    assert await _login(client, editor, NEW_PASSWORD) == 200


async def test_admins_cannot_reset_their_own_mfa_nor_one_outside_their_subtree(client):
    unit, elsewhere = await make_unit(), await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    outsider = await make_account(role=Role.UNIT_ADMIN, unit=elsewhere)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    headers = await sign_in(client, admin)
    own = await client.post(f"/v1/users/{admin.id}/mfa-reset", headers=headers, json={})
    assert own.status_code == 403 and own.json()["error"]["code"] == "self_mfa_reset"
    filed = await client.post(f"/v1/users/{editor.id}/mfa-reset", headers=headers, json={"reason": "lost"})
    assert filed.status_code == 201, filed.text
    outsider_headers = await sign_in(client, outsider)
    assert (await client.get("/v1/mfa-resets", headers=outsider_headers)).json() == []
    foreign = await client.post(f"/v1/mfa-resets/{filed.json()['id']}/confirm", headers=outsider_headers)
    assert foreign.status_code == 404
    cancelled = await client.post(f"/v1/mfa-resets/{filed.json()['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert await _has_totp(editor.id)


async def test_a_request_filed_in_the_console_is_confirmed_through_the_api_and_the_rule_holds(
    console, client, app
):
    """One rule, two doors: the console's request is the API's request, and neither door lets
    its requester confirm it."""
    unit = await make_unit()
    first = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    second = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    token = await console_sign_in(console, first)
    requested = await console.post(
        f"/console/admin/users/{editor.id}/mfa-reset", data={"csrf_token": token, "reason": "lost phone"}
    )
    assert requested.status_code == 303
    transport = httpx.ASGITransport(app=app, client=("203.0.113.22", 52002))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as api:
        first_api = await sign_in(api, first)
        [pending] = (await api.get("/v1/mfa-resets", headers=first_api)).json()
        own = await api.post(f"/v1/mfa-resets/{pending['id']}/confirm", headers=first_api)
        assert own.status_code == 403 and own.json()["error"]["code"] == "second_admin_required"
        second_api = await sign_in(api, second)
        confirmed = await api.post(f"/v1/mfa-resets/{pending['id']}/confirm", headers=second_api)
        assert confirmed.status_code == 200, confirmed.text
    assert not await _has_totp(editor.id)
