"""Codes outside ASCII in the console's forms (issue 12 item 10): the same rule as the API
(core/codes.py). A non-ASCII code is a wrong code, counted like any other; nothing raises; a NUL
in any form or query value is refused as the API refuses it."""

from __future__ import annotations

import uuid

import httpx

from auth.roles import Role
from core import clock
from tests.console.support import console_sign_in, csrf_from
from tests.support.codes import ACCEPTED, REFUSED
from tests.support.codes import current_code as _current_code
from tests.support.codes import failed_attempts as _failed_attempts
from tests.support.factories import Account, make_account, make_unit


async def _console_login(
    console: httpx.AsyncClient, account: Account, code: str, username: str | None = None
):
    page = await console.get("/console/login")
    return await console.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "username": account.username if username is None else username,
            "password": account.password,
            "totp_code": code,
            "next": "/home",
        },
    )


async def test_console_sign_in_with_non_ascii_digits_is_a_wrong_code_not_a_500(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    for number, name in enumerate(["arabic-indic", "devanagari", "mixed scripts"], start=1):
        clock.advance(60)  # past the per-account backoff of the previous failure
        response = await _console_login(console, editor, REFUSED[name](_current_code(editor)))
        assert response.status_code == 401, (name, response.text[:500])
        assert 'data-testid="login-error"' in response.text
        assert await _failed_attempts(editor) == number, name  # counted like any wrong code
    clock.advance(120)
    response = await _console_login(console, editor, ACCEPTED["fullwidth"](_current_code(editor)))
    assert response.status_code == 303, response.text[:500]
    assert await _failed_attempts(editor) == 0


async def test_console_mfa_verify_form_fails_cleanly(console):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    page = await _console_login(console, admin, "")
    assert page.status_code == 303 and page.headers["location"].endswith("/mfa/verify")
    form = await console.get("/console/mfa/verify")
    token = csrf_from(form.text)
    wrong = await console.post(
        "/console/mfa/verify",
        data={"csrf_token": token, "code": REFUSED["arabic-indic"](_current_code(admin))},
    )
    assert wrong.status_code == 401, wrong.text[:500]
    clock.advance(60)
    ok = await console.post(
        "/console/mfa/verify",
        data={"csrf_token": token, "code": ACCEPTED["superscript"](_current_code(admin))},
    )
    assert ok.status_code == 303, ok.text[:500]


async def test_console_step_up_forms_fail_cleanly(console):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    token = await console_sign_in(console, admin)
    clock.advance(301)  # the step-up must come from the form
    step_up = await console.post(
        "/console/admin/api-clients",
        data={
            "csrf_token": token,
            "name": "CMS",
            "unit_id": str(unit.id),
            "scopes": "notifications:send",
            "totp_code": REFUSED["arabic-indic"](_current_code(admin)),
        },
    )
    assert step_up.status_code == 403 and "step_up_failed" in step_up.text
    clock.advance(60)
    step_up = await console.post(
        "/console/admin/api-clients",
        data={
            "csrf_token": token,
            "name": "CMS",
            "unit_id": str(unit.id),
            "scopes": "notifications:send",
            "totp_code": ACCEPTED["fullwidth"](_current_code(admin)),
        },
    )
    assert step_up.status_code == 200, step_up.text[:500]


async def test_console_forms_refuse_nul_like_the_api(console):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    for field in ("username", "totp_code"):
        page = await console.get("/console/login")
        data = {
            "csrf_token": csrf_from(page.text),
            "username": editor.username,
            "password": editor.password,
            "totp_code": "",
            "next": "/home",
        }
        data[field] = "a\x00b"
        response = await console.post("/console/login", data=data)
        assert response.status_code == 422, (field, response.text[:300])
        assert field in response.text
    assert (await console.get("/console/login", params={"next": "/\x00"})).status_code == 422
    assert (
        await console.get(f"/console/admin/users/{uuid.uuid4()}", params={"done": "\x00"})
    ).status_code == 422
