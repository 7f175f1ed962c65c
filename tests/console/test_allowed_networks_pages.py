"""Allowed networks in the console: the same rules as the API (the console's routes depend on the
API's access policies), refused with a page that says what to do, in the reader's language."""

from __future__ import annotations

from auth.roles import Role
from console.security import SESSION_COOKIE
from tests.console.support import console_sign_in, csrf_from
from tests.support.factories import make_account, make_unit
from tests.support.networks import INSIDE, allow, client_at, refusals

CONSOLE_PEER = "203.0.113.20"  # the console fixture's address (tests/console/conftest.py)
VI_REFUSAL = "Thao tác này chỉ được thực hiện từ mạng của các cơ quan (VPN)"
EN_REFUSAL = "networks (VPN). Connect to the VPN and try again."


async def test_audit_export_outside_the_agencies_network_gets_a_clear_page(app, console, monkeypatch):
    allow(monkeypatch, {"audit:read": ["10.20.0.0/16"]})
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    await console_sign_in(console, admin)  # a permission rule leaves signing in open

    page = await console.get("/console/admin/audit/export.csv")
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert VI_REFUSAL in page.text and CONSOLE_PEER in page.text
    assert "network_not_allowed" in page.text

    home = await console.get("/console/home")
    switched = await console.post(
        "/console/lang", data={"csrf_token": csrf_from(home.text), "language": "en", "next": "/home"}
    )
    assert switched.status_code == 303
    english = await console.get("/console/admin/audit")
    assert english.status_code == 403 and EN_REFUSAL in english.text

    # The same console session from inside the agencies' network.
    async with client_at(app, INSIDE, https=True) as inside:
        inside.cookies = console.cookies
        export = await inside.get("/console/admin/audit/export.csv")
        assert export.status_code == 200, export.text[:300]
        assert export.headers["content-type"].startswith("text/csv")

    rows = await refusals("permission.denied")
    assert [row.object_id for row in rows] == [
        "GET /console/admin/audit/export.csv",
        "GET /console/admin/audit",
    ]
    assert {row.ip for row in rows} == {CONSOLE_PEER} and {row.actor_id for row in rows} == {admin.id}


async def test_a_held_role_cannot_sign_in_to_the_console_from_outside(app, console, monkeypatch):
    allow(monkeypatch, {"system_admin": ["10.20.0.0/16"]})
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    login = await console.get("/console/login")
    refused = await console.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(login.text),
            "username": admin.username,
            "password": admin.password,
            "totp_code": admin.code(),
            "next": "/home",
        },
    )
    assert refused.status_code == 403
    assert VI_REFUSAL in refused.text and CONSOLE_PEER in refused.text
    assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")  # no session opened
    [row] = await refusals("auth.login_failed")
    assert row.actor_id == admin.id and row.ip == CONSOLE_PEER

    async with client_at(app, INSIDE, https=True) as inside:
        await console_sign_in(inside, admin)
        home = await inside.get("/console/home")
        assert home.status_code == 200
        token = csrf_from(home.text)
        cookies = inside.cookies

    # Off the VPN now: every page is refused, but signing out still works (it only takes power away).
    console.cookies = cookies
    assert (await console.get("/console/home")).status_code == 403
    out = await console.post("/console/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"].endswith("/login")
    async with client_at(app, INSIDE, https=True) as inside:
        inside.cookies = cookies
        after = await inside.get("/console/home")
        assert after.status_code in (302, 303, 401), after.status_code  # the session is gone
