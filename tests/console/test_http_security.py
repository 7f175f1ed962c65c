"""The console's security properties over plain HTTP (fast, no browser)."""

from __future__ import annotations

from auth.roles import Role
from tests.console.support import console_sign_in, csrf_from
from tests.support.factories import make_account, make_unit


async def test_pages_carry_a_strict_csp_and_cookies_are_httponly_secure_strict(console):
    page = await console.get("/console/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert "chuong_csrf=" in cookie
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/console"):
        assert attribute in cookie
    # No inline script anywhere in the page: only src= scripts.
    assert "<script>" not in page.text and "<script " in page.text
    assert 'src="/console/static/htmx.min.js"' in page.text


async def test_sign_in_sets_a_secure_session_cookie_and_opens_the_home_page(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    await console_sign_in(console, editor)
    session_cookie = console.cookies.get("chuong_console")
    assert session_cookie
    home = await console.get("/console/home")
    assert home.status_code == 200
    assert editor.username in home.text


async def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    token = await console_sign_in(console, editor)
    missing = await console.post("/console/sessions/revoke-all", data={})
    assert missing.status_code == 403
    wrong = await console.post("/console/sessions/revoke-all", data={"csrf_token": "x" * 43})
    assert wrong.status_code == 403
    wrong_header = await console.post("/console/sessions/revoke-all", headers={"X-CSRF-Token": "y" * 43})
    assert wrong_header.status_code == 403
    # Still signed in: nothing happened.
    assert (await console.get("/console/home")).status_code == 200
    # The right token works (and signs out everywhere).
    ok = await console.post("/console/sessions/revoke-all", data={"csrf_token": token})
    assert ok.status_code == 303
    assert (await console.get("/console/home")).status_code == 303


async def test_the_login_form_itself_needs_the_csrf_token(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    await console.get("/console/login")
    response = await console.post(
        "/console/login", data={"username": editor.username, "password": editor.password}
    )
    assert response.status_code == 403
    assert console.cookies.get("chuong_console") is None


async def test_a_tampered_session_cookie_is_ignored(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    await console_sign_in(console, editor)
    sealed = console.cookies.get("chuong_console")
    assert sealed
    payload, _, mac = sealed.rpartition(".")
    console.cookies.clear()
    forged = payload + "." + ("0" * len(mac))
    response = await console.get("/console/home", headers={"Cookie": f"chuong_console={forged}"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/console/login")
    genuine = await console.get("/console/home", headers={"Cookie": f"chuong_console={sealed}"})
    assert genuine.status_code == 200


async def test_a_wrong_totp_code_does_not_sign_in(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    page = await console.get("/console/login")
    response = await console.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "username": editor.username,
            "password": editor.password,
            "totp_code": "000000",
        },
    )
    assert response.status_code == 401
    assert console.cookies.get("chuong_console") is None


def test_every_console_route_declares_an_access_policy_and_csrf(app):
    """The API's route-policy test cannot see into the mounted console; this one does."""
    from fastapi import FastAPI
    from fastapi.routing import APIRoute, iter_route_contexts
    from starlette.routing import Mount

    from console.security import verify_csrf
    from tests.api.test_route_policies import policies

    console_app = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/console")
    assert isinstance(console_app, FastAPI)
    routes = [
        context
        for context in iter_route_contexts(console_app.router.routes)
        if isinstance(context.original_route, APIRoute)
    ]
    assert len(routes) > 30
    for context in routes:
        assert policies(context.dependant), f"{context.methods} {context.path} has no access policy"
        assert any(d.call is verify_csrf for d in context.dependant.dependencies), context.path
        route = context.original_route
        assert isinstance(route, APIRoute) and route.include_in_schema is False, context.path


async def test_a_password_only_session_is_sent_to_the_code_page_until_verified(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    page = await console.get("/console/login")
    signed = await console.post(
        "/console/login",
        data={"csrf_token": csrf_from(page.text), "username": editor.username, "password": editor.password},
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/console/mfa/verify"
    home = await console.get("/console/home")
    assert home.status_code == 303 and home.headers["location"] == "/console/mfa/verify"
    form = await console.get("/console/mfa/verify")
    verified = await console.post(
        "/console/mfa/verify", data={"csrf_token": csrf_from(form.text), "code": editor.code()}
    )
    assert verified.status_code == 303
    assert (await console.get("/console/home")).status_code == 200
