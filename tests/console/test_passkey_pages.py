"""The console's passkey pages over HTTP, with real WebAuthn data from the software authenticator
(the browser test drives Chromium's virtual authenticator through the same routes)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auth.roles import Role
from core import clock
from core.config import get_settings
from tests.console.support import console_sign_in, csrf_from
from tests.support.factories import Account, make_account, make_unit
from tests.support.soft_authenticator import SoftAuthenticator

ORIGIN = "https://testserver"


@pytest.fixture(autouse=True)
def _relying_party(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(get_settings(), "webauthn_rp_id", "testserver")
    monkeypatch.setattr(get_settings(), "webauthn_origins", [ORIGIN])


async def _json(console: httpx.AsyncClient, path: str, csrf: str, body: dict[str, Any]) -> httpx.Response:
    return await console.post(f"/console{path}", json=body, headers={"X-CSRF-Token": csrf})


async def _add_passkey(console: httpx.AsyncClient, csrf: str, key: SoftAuthenticator, name: str) -> None:
    started = await _json(console, "/passkeys/registration/options", csrf, {"code": ""})
    assert started.status_code == 200, started.text
    body = started.json()
    done = await _json(
        console,
        "/passkeys/registration",
        csrf,
        {
            "ceremony_id": body["ceremony_id"],
            "name": name,
            "credential": key.create(body["options"], origin=ORIGIN),
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["redirect"] == "/console/passkeys?done=passkey_added"


async def _password_only(console: httpx.AsyncClient, account: Account) -> str:
    page = await console.get("/console/login")
    response = await console.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "username": account.username,
            "password": account.password,
            "next": "/home",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/mfa/verify"
    verify = await console.get("/console/mfa/verify")
    assert verify.status_code == 200
    return csrf_from(verify.text)


async def test_a_leader_is_guided_to_a_passkey_and_then_signs_in_with_it(console):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    csrf = await console_sign_in(console, leader)  # lands on the guidance, not the home page
    page = await console.get("/console/passkeys")
    assert 'data-testid="passkey-guidance"' in page.text
    refused = await console.post("/console/passkeys/registration/options", json={"code": ""})
    assert refused.status_code == 403  # no CSRF header
    key = SoftAuthenticator()
    await _add_passkey(console, csrf, key, "Khoá USB")
    page = await console.get("/console/passkeys")
    assert "Khoá USB" in page.text and 'data-testid="passkey-guidance"' not in page.text

    await console.post("/console/logout", data={"csrf_token": csrf})
    csrf = await _password_only(console, leader)
    verify = await console.get("/console/mfa/verify")
    assert 'data-testid="use-passkey"' in verify.text and 'name="code"' not in verify.text
    assert (await console.get("/console/home")).headers["location"] == "/console/mfa/verify?next=/home"

    options = (await _json(console, "/passkeys/assertion/options", csrf, {})).json()
    wrong = await _json(
        console,
        "/passkeys/assertion",
        csrf,
        {
            "ceremony_id": options["ceremony_id"],
            "credential": key.get(options["options"], origin="https://evil.example"),
        },
    )
    # Refused as JSON: the session is not ended (a 401 page would sign the leader out).
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_passkey"
    assert (await console.get("/console/mfa/verify")).status_code == 200

    options = (await _json(console, "/passkeys/assertion/options", csrf, {})).json()
    done = await _json(
        console,
        "/passkeys/assertion",
        csrf,
        {
            "ceremony_id": options["ceremony_id"],
            "credential": key.get(options["options"], origin=ORIGIN),
            "next": "//evil.example",
        },
    )
    assert done.status_code == 200 and done.json()["redirect"] == "/console/"
    assert (await console.get("/console/home")).status_code == 200


async def test_an_admin_sees_and_revokes_a_leaders_passkey_with_a_step_up(console, app):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.21", 52001))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as leader_console:
        await _add_passkey(
            leader_console,
            await console_sign_in(leader_console, leader),
            SoftAuthenticator(),
            "Khoá dự phòng",
        )
    csrf = await console_sign_in(console, admin)
    page = await console.get(f"/console/admin/users/{leader.id}")
    assert "Khoá dự phòng" in page.text
    action = page.text.split(f"/console/admin/users/{leader.id}/passkeys/")[1].split('"')[0]
    revoke = f"/console/admin/users/{leader.id}/passkeys/{action}"
    clock.advance(get_settings().step_up_max_age_seconds + 1)
    # The form names its own page (the console sends no Referer) for the way back.
    assert f'name="back" value="/admin/users/{leader.id}"' in page.text
    stale = await console.post(revoke, data={"csrf_token": csrf, "back": f"/admin/users/{leader.id}"})
    assert stale.status_code == 403 and 'data-testid="step-up-passkey"' in stale.text
    assert f"next=/admin/users/{leader.id}" in stale.text.replace("%2F", "/")
    done = await console.post(revoke, data={"csrf_token": csrf, "totp_code": admin.code()})
    assert done.status_code == 303 and done.headers["location"].endswith("done=passkey_revoked")
    assert "Khoá dự phòng" not in (await console.get(f"/console/admin/users/{leader.id}")).text


async def test_a_code_in_a_step_up_form_sends_a_passkey_holder_to_confirm_with_the_passkey(console):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    csrf = await console_sign_in(console, leader)
    await _add_passkey(console, csrf, SoftAuthenticator(), "Khoá 1")
    page = await console.get("/console/passkeys")
    revoke = "/console/passkeys/" + page.text.split('action="/console/passkeys/')[1].split('"')[0]
    refused = await console.post(
        revoke,
        data={"csrf_token": csrf, "totp_code": leader.code(), "back": "/passkeys"},
    )
    assert refused.status_code == 303
    assert refused.headers["location"] == "/console/mfa/verify?next=/passkeys"
    assert "Khoá 1" in (await console.get("/console/passkeys")).text
