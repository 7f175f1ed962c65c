"""The operators' live figures in a real browser (headless Chromium through Playwright): an admin
sees them on the home page and sees them change, without a reload, when the outbox fills and a
push breaker opens; an editor sees no panel and the endpoint refuses the browser."""

from __future__ import annotations

import datetime as dt
import uuid

from playwright.async_api import BrowserContext, expect

from auth.roles import Role
from core import clock
from core.config import get_settings
from core.db import transaction
from notifications import breaker, headline
from notifications.outbox import ClaimedDelivery
from notifications.providers.base import Outcome, SendResult
from tests.console.browser import sign_in, snap
from tests.notifications.conftest import register_devices
from tests.notifications.due_rows import due_notification, open_batch
from tests.support.factories import make_account, make_unit
from tests.support.factories import sign_in as sign_in_api
from workers.figures_jobs import measure_figures

SECOND = dt.timedelta(seconds=1)


async def _three_due_deliveries() -> None:
    now = clock.utcnow()
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(3)])
    async with transaction() as session:
        push = due_notification(priority="high", now=now)
        session.add(push)
        await session.flush()
        # Due for 150 s: past the 2 minutes a high push may wait (the alert's limit).
        await open_batch(session, push, devices, rows=[("pending", now - 150 * SECOND)] * 3)


def _failing_answers(count: int) -> list[tuple[ClaimedDelivery, SendResult]]:
    return [
        (
            ClaimedDelivery(
                id=index,
                device_id=uuid.uuid4(),
                provider="fcm",
                language="vi",
                attempts=1,
                token="t",
                apns_environment=None,
            ),
            SendResult(Outcome.RETRY, error_code="UNAVAILABLE"),
        )
        for index in range(count)
    ]


async def test_an_admin_watches_the_figures_change_without_reloading(
    live, browser_context: BrowserContext, monkeypatch
):
    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.5)
    monkeypatch.setattr(get_settings(), "push_breaker_min_requests", 10)
    await measure_figures({})  # an empty outbox, measured
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    page = await browser_context.new_page()
    await sign_in(page, live, admin)
    panel = page.get_by_test_id("live-panel")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("heading")).to_have_text("Hệ thống lúc này")
    await expect(page.locator("dl.figures")).to_have_attribute("aria-live", "polite")
    await expect(page.get_by_test_id("live-backlog")).to_have_text("0")
    await expect(page.get_by_test_id("live-breakers")).to_contain_text("chưa có phản hồi")
    await page.evaluate("window.__same_page = true")  # gone if the page reloads

    # Work piles up: the cron measures it, the panel shows it by itself.
    await _three_due_deliveries()
    await measure_figures({})
    await expect(page.get_by_test_id("live-backlog")).to_have_text("3", timeout=10_000)
    oldest = page.locator('[data-figure="oldest_due"]')
    await expect(oldest).to_have_attribute("data-level", "bad")
    await expect(oldest.locator("[data-level-word]")).to_have_text("nghiêm trọng")

    # The provider fails: the breaker opens and its line turns red.
    assert await breaker.record_outcomes(_failing_answers(12)) == ["fcm"]
    breakers = page.locator('[data-figure="breakers"]')
    await expect(breakers).to_have_attribute("data-level", "bad", timeout=10_000)
    await expect(page.locator('[data-breakers] li[data-provider="fcm"]')).to_contain_text("fcm: mở (đã ngắt)")
    await expect(page.get_by_test_id("live-error-rate")).to_have_text("100.0 %")
    await expect(page.locator('[data-figure="error_rate"]')).to_have_attribute("data-level", "bad")
    assert await page.evaluate("window.__same_page === true")
    await snap(page, "live")

    # English on request: the same panel, the same figures.
    await page.click("[data-testid=lang-en]")
    await expect(page.get_by_test_id("live-panel").get_by_role("heading")).to_have_text("Service now")
    await expect(page.locator('[data-breakers] li[data-provider="fcm"]')).to_contain_text("fcm: open")


async def test_an_editor_sees_no_live_panel_and_the_endpoint_refuses_the_browser(
    live, browser_context: BrowserContext
):
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    page = await browser_context.new_page()
    await sign_in(page, live, editor)
    await expect(page.get_by_test_id("welcome")).to_be_visible()
    await expect(page.get_by_test_id("live-panel")).to_have_count(0)
    answer = await page.evaluate(
        """async () => {
            const response = await fetch("/console/live/figures");
            return {status: response.status, body: await response.json()};
        }"""
    )
    assert answer["status"] == 403 and answer["body"]["error"]["code"] == "permission_denied"


async def test_the_panel_stops_when_the_session_ends(
    live, client, browser_context: BrowserContext, monkeypatch
):
    monkeypatch.setattr(headline, "EVERY_SECONDS", 0.3)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=await make_unit())
    page = await browser_context.new_page()
    await sign_in(page, live, admin)
    stopped = page.locator('[data-live="ended"]')
    await expect(page.get_by_test_id("live-panel")).to_be_visible()
    await expect(stopped).to_be_hidden()
    clock.advance(30)  # a fresh TOTP code for the API's sign-in (a code is good once)
    headers = await sign_in_api(client, admin)
    assert (await client.post("/v1/auth/sessions/revoke-all", headers=headers)).status_code == 204
    # The open stream checks the session before its next event, says "ended" and closes.
    await expect(stopped).to_be_visible(timeout=10_000)
