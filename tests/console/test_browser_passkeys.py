"""A leader enrols a passkey and signs in with it, in a real browser: Chromium's virtual
authenticator (the DevTools protocol's WebAuthn domain, through a Playwright CDP session) answers
navigator.credentials.create()/get() with real attestation and assertion objects, which the
service verifies with py_webauthn. Nothing is mocked.

WebAuthn refuses an IP address as the relying party, so the browser visits the live server as
``localhost`` (the RP ID) rather than 127.0.0.1."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from auth.models import WebauthnCredential
from auth.roles import Role
from core.config import get_settings
from core.db import transaction
from tests.console.browser import sign_in, snap
from tests.support.factories import make_account, make_unit


@pytest.fixture
async def site(live, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    base = live.replace("127.0.0.1", "localhost")
    monkeypatch.setattr(get_settings(), "webauthn_rp_id", "localhost")
    monkeypatch.setattr(get_settings(), "webauthn_origins", [base])
    return str(base)


async def _virtual_authenticator(context: BrowserContext, page):  # type: ignore[no-untyped-def]
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


async def test_a_leader_enrols_a_passkey_and_signs_in_with_it(site: str, browser_context: BrowserContext):
    unit = await make_unit(name="Văn phòng Trung ương Đảng")
    leader = await make_account(role=Role.LEADER, unit=unit)
    page = await browser_context.new_page()
    cdp, authenticator = await _virtual_authenticator(browser_context, page)

    # First sign-in with the code: the console guides a leader without a passkey to add one.
    await sign_in(page, site, leader)
    await expect(page.get_by_test_id("passkey-guidance")).to_be_visible()
    assert page.url.endswith("/console/passkeys")
    await page.fill("[data-testid=passkey-name]", "Khoá USB của đồng chí")
    await page.click("[data-testid=add-passkey]")
    await expect(page.get_by_test_id("done")).to_be_visible()
    await expect(page.get_by_test_id("passkeys")).to_contain_text("Khoá USB của đồng chí")
    await snap(page, "passkeys")
    stored = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))["credentials"]
    assert len(stored) == 1

    # From now on the password leads to the passkey, and no code is offered.
    await page.click("[data-testid=logout]")
    await sign_in(page, site, leader, code=False)
    assert "/console/mfa/verify" in page.url
    await expect(page.get_by_test_id("use-passkey")).to_be_visible()
    assert await page.locator("[data-testid=verify]").count() == 0
    await snap(page, "passkey-sign-in")
    await page.click("[data-testid=use-passkey]")
    await expect(page.get_by_test_id("welcome")).to_be_visible()
    assert page.url.endswith("/console/home")

    async with transaction() as session:
        row = (await session.scalars(select(WebauthnCredential))).one()
    after = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))["credentials"]
    # The service kept the counter the authenticator reported at sign-in.
    assert row.last_used_at is not None and row.sign_count == after[0]["signCount"] >= 1
    assert row.name == "Khoá USB của đồng chí"


async def test_a_cancelled_prompt_leaves_the_leader_on_the_passkey_page(
    site: str, browser_context: BrowserContext, monkeypatch
):
    monkeypatch.setattr(get_settings(), "webauthn_challenge_seconds", 30)  # the prompt's own timeout
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    page = await browser_context.new_page()
    cdp, authenticator = await _virtual_authenticator(browser_context, page)
    await sign_in(page, site, leader)
    await page.fill("[data-testid=passkey-name]", "Khoá 1")
    await page.click("[data-testid=add-passkey]")
    await expect(page.get_by_test_id("done")).to_be_visible()
    await page.click("[data-testid=logout]")
    # The key is gone from the browser (another computer): the prompt finds no credential.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    await sign_in(page, site, leader, code=False)
    await page.click("[data-testid=use-passkey]")
    await expect(page.get_by_test_id("passkey-error")).to_be_visible(timeout=60_000)
    assert "/console/mfa/verify" in page.url
    response = await page.goto(f"{site}/console/home")
    assert response is not None and "/console/mfa/verify" in page.url
