"""Session lifetimes (issue 12 item 11): staff sessions follow NIST SP 800-63B AAL2 (12 hours
absolute, 30 minutes idle); readers' devices keep 14 days; both limits are per-role settings.
Time moves with the service clock (core/clock.py), never by sleeping."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.roles import Role
from auth.session_limits import limits_for
from core import clock
from core.config import SessionLimitOverride, get_settings
from tests.support.factories import Account, make_account, make_unit

MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR


async def _sign_in(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    body = {"username": account.username, "password": account.password}
    if account.totp_secret:
        body["totp_code"] = account.code()
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def _me(client: httpx.AsyncClient, access_token: str, **headers: str) -> httpx.Response:
    return await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {access_token}", **headers})


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def _expiry_rows(owner_engine: AsyncEngine, session_id: str) -> list[str]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT details->>'reason' FROM audit_log"
                " WHERE action = 'auth.session_expired' AND object_id = :id"
            ),
            {"id": session_id},
        )
        return [row[0] for row in rows]


async def test_staff_idle_for_31_minutes_is_refused_via_access_and_refresh_token(client, owner_engine):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _sign_in(client, editor)
    assert (await _me(client, tokens["access_token"])).status_code == 200

    # A refresh is not activity: a client refreshing at minute 29 gets a fresh access token...
    clock.advance(29 * MINUTE)
    refreshed = await _refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    fresh = refreshed.json()
    # ...that stops working once 30 minutes have passed without a request, though it is not
    # itself expired (issued 2 minutes ago, valid for 10).
    clock.advance(2 * MINUTE)
    refused = await _me(client, fresh["access_token"])
    assert refused.status_code == 401
    assert _code(refused) == "session_expired"
    again = await _refresh(client, fresh["refresh_token"])
    assert again.status_code == 401
    assert _code(again) == "session_expired"
    # Every later attempt says the same, and the expiry was audited once.
    assert _code(await _me(client, fresh["access_token"])) == "session_expired"
    assert await _expiry_rows(owner_engine, tokens["session_id"]) == ["idle_timeout"]
    # Signing in again (password + TOTP) opens a new session.
    assert (await _me(client, (await _sign_in(client, editor))["access_token"])).status_code == 200


async def test_staff_idle_limit_counts_requests_not_refreshes(client):
    unit = await make_unit()
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    tokens = await _sign_in(client, publisher)
    for _ in range(5):  # a request every 9 minutes keeps the session open well past 30 minutes
        clock.advance(9 * MINUTE)
        assert (await _me(client, tokens["access_token"])).status_code == 200
        refreshed = await _refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        tokens = refreshed.json()
    # Refreshing alone, on a timer, does not.
    for _ in range(3):
        clock.advance(9 * MINUTE)
        refreshed = await _refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200
        tokens = refreshed.json()
    clock.advance(4 * MINUTE)  # 31 minutes since the last request
    assert _code(await _refresh(client, tokens["refresh_token"])) == "session_expired"


async def test_a_stream_reconnecting_on_its_own_is_not_activity(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _sign_in(client, editor)
    clock.advance(8 * MINUTE)
    # An EventSource reconnects by itself every few minutes while a page stays open.
    assert (await _me(client, tokens["access_token"], accept="text/event-stream")).status_code == 200
    clock.advance(8 * MINUTE)
    tokens = (await _refresh(client, tokens["refresh_token"])).json()
    clock.advance(5 * MINUTE)
    assert (await _me(client, tokens["access_token"], accept="text/event-stream")).status_code == 200
    clock.advance(5 * MINUTE)
    tokens = (await _refresh(client, tokens["refresh_token"])).json()
    clock.advance(3 * MINUTE)
    assert (await _me(client, tokens["access_token"], accept="text/event-stream")).status_code == 200
    clock.advance(2 * MINUTE)  # 31 minutes since the last request the person made
    assert _code(await _me(client, tokens["access_token"], accept="text/event-stream")) == "session_expired"


async def test_staff_active_every_10_minutes_must_sign_in_again_after_12_hours(client, owner_engine):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    tokens = await _sign_in(client, admin)
    session_id = tokens["session_id"]
    elapsed = 0
    while elapsed + 10 * MINUTE < 12 * HOUR:
        clock.advance(10 * MINUTE - 5)  # just inside the access token's 10 minutes
        elapsed += 10 * MINUTE - 5
        assert (await _me(client, tokens["access_token"])).status_code == 200, elapsed
        refreshed = await _refresh(client, tokens["refresh_token"])
        assert refreshed.status_code == 200, (elapsed, refreshed.text)
        tokens = refreshed.json()
    clock.advance(12 * HOUR - elapsed)
    refused = await _me(client, tokens["access_token"])
    assert refused.status_code == 401
    assert _code(refused) == "session_expired"
    assert _code(await _refresh(client, tokens["refresh_token"])) == "session_expired"
    assert await _expiry_rows(owner_engine, session_id) == ["max_age"]


async def test_a_readers_device_session_lasts_14_days_without_an_idle_limit(client):
    unit = await make_unit()
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    tokens = await _sign_in(client, member)
    clock.advance(6 * DAY)  # a week in a drawer
    refreshed = await _refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    assert (await _me(client, tokens["access_token"])).status_code == 200
    clock.advance(8 * DAY - 2 * MINUTE)
    refreshed = await _refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    clock.advance(3 * MINUTE)  # 14 days and a minute after signing in
    assert _code(await _me(client, tokens["access_token"])) == "session_expired"
    assert _code(await _refresh(client, tokens["refresh_token"])) == "session_expired"


async def test_limits_are_configurable_per_role(client, monkeypatch):
    monkeypatch.setattr(
        get_settings(),
        "session_limits_by_role",
        {
            "publisher": SessionLimitOverride(idle_seconds=10 * MINUTE),
            "system_admin": SessionLimitOverride(max_seconds=HOUR),
            "member": SessionLimitOverride(idle_seconds=HOUR),
        },
    )
    unit = await make_unit()
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    publisher_tokens = await _sign_in(client, publisher)
    editor_tokens = await _sign_in(client, editor)
    member_tokens = await _sign_in(client, member)
    clock.advance(11 * MINUTE)
    assert _code(await _refresh(client, publisher_tokens["refresh_token"])) == "session_expired"
    assert (await _refresh(client, editor_tokens["refresh_token"])).status_code == 200
    clock.advance(50 * MINUTE)
    assert _code(await _refresh(client, member_tokens["refresh_token"])) == "session_expired"

    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    admin_tokens = await _sign_in(client, admin)
    for _ in range(6):
        clock.advance(9 * MINUTE)
        assert (await _me(client, admin_tokens["access_token"])).status_code == 200
        admin_tokens = (await _refresh(client, admin_tokens["refresh_token"])).json()
    clock.advance(7 * MINUTE)  # an hour after signing in, though active
    assert _code(await _me(client, admin_tokens["access_token"])) == "session_expired"


def test_an_override_naming_an_unknown_role_is_refused(monkeypatch):
    monkeypatch.setattr(
        get_settings(), "session_limits_by_role", {"sysadmin": SessionLimitOverride(max_seconds=HOUR)}
    )
    with pytest.raises(ValueError, match="sysadmin"):
        limits_for(Role.EDITOR)
    from cli.asgi import create_app

    with pytest.raises(ValueError, match="sysadmin"):  # at start-up, not at the first sign-in
        create_app(manage_resources=False)


def test_default_limits_follow_aal2_for_staff_and_14_days_for_readers():
    for role in Role:
        limits = limits_for(role)
        if role is Role.MEMBER:
            assert (limits.max_age.total_seconds(), limits.idle) == (14 * DAY, None)
        else:
            assert limits.max_age.total_seconds() == 12 * HOUR
            assert limits.idle is not None and limits.idle.total_seconds() == 30 * MINUTE


async def test_session_lists_leave_out_idle_expired_sessions(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    idle = await _sign_in(client, editor)
    clock.advance(31 * MINUTE)
    active = await _sign_in(client, editor)
    listed = await client.get(
        "/v1/auth/sessions", headers={"Authorization": f"Bearer {active['access_token']}"}
    )
    assert [s["id"] for s in listed.json()] == [active["session_id"]]
    admin_headers = {"Authorization": f"Bearer {(await _sign_in(client, admin))['access_token']}"}
    listed = await client.get(f"/v1/users/{editor.id}/sessions", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()] == [active["session_id"]]
    assert idle["session_id"] != active["session_id"]


async def test_concurrent_requests_of_an_expired_session_audit_it_once(client, owner_engine):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _sign_in(client, editor)
    clock.advance(29 * MINUTE)
    tokens = (await _refresh(client, tokens["refresh_token"])).json()
    clock.advance(2 * MINUTE)
    answers = await asyncio.gather(*(_me(client, tokens["access_token"]) for _ in range(5)))
    assert {(a.status_code, _code(a)) for a in answers} == {(401, "session_expired")}
    assert await _expiry_rows(owner_engine, tokens["session_id"]) == ["idle_timeout"]
