"""Breaking news in a real browser: an editor composes, a publisher approves with a TOTP
step-up, the push goes through the real pipeline to the emulator, and the delivery view shows
the sent count."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from auth.roles import Role
from tests.console.browser import sign_in, snap
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import run_workers
from tests.support.factories import make_account, make_unit


async def test_editor_composes_publisher_approves_with_step_up_and_the_sent_count_shows(
    live, chromium, browser_context: BrowserContext, worker_ctx
):
    unit = await make_unit(name="Báo Trung ương")
    editor = await make_account(role=Role.EDITOR, unit=unit)
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    devices = [("fcm", f"console-fcm-{i:04d}-token", "vi") for i in range(5)]
    devices += [("apns", f"{i:064x}", "en") for i in range(3)]
    await register_devices(devices)

    page = await browser_context.new_page()
    await sign_in(page, live, editor)
    await page.goto(f"{live}/console/news/new")
    await page.fill("[data-testid=article-id]", "bai-viet-42")
    await page.fill("[data-testid=deep-link]", "chuong-portal://article/42")
    await page.fill("[data-testid=title-vi]", "Bão số 3 đổ bộ <b>Quảng Ninh</b>")
    await page.fill("[data-testid=body-vi]", "Người dân cần theo dõi thông tin chính thức.")
    await page.click("label[for=tab-en]")
    await page.fill("[data-testid=title-en]", "Typhoon Yagi makes landfall")
    await page.fill("[data-testid=body-en]", "Follow official updates.")
    await expect(page.get_by_test_id("audience-total")).to_contain_text("8")
    await expect(page.get_by_test_id("bytes-vi-android")).to_contain_text("/ 4096 B")
    # Markup typed into a title is text, in the preview as everywhere.
    await expect(page.get_by_test_id("preview")).to_contain_text("<b>Quảng Ninh</b>")
    await snap(page, "compose")
    await page.click("[data-testid=submit-for-approval]")
    await expect(page.get_by_test_id("news-status")).to_have_attribute("data-status", "submitted")
    item_url = page.url

    publisher_context = await chromium.new_context(viewport={"width": 1280, "height": 860})
    try:
        approver = await publisher_context.new_page()
        await sign_in(approver, live, publisher)
        await approver.goto(f"{live}/console/news/approvals")
        await expect(approver.get_by_test_id("news-items")).to_contain_text("Bão số 3")
        await snap(approver, "approvals")
        await approver.goto(item_url)
        await expect(approver.get_by_test_id("side-by-side")).to_contain_text("Typhoon Yagi")
        await snap(approver, "approve")
        # A wrong code is refused and nothing is sent.
        await approver.fill("[data-testid=approve-code]", "000000")
        await approver.click("[data-testid=approve]")
        await expect(approver.get_by_test_id("error")).to_contain_text("403")
        await approver.goto(item_url)
        await approver.fill("[data-testid=approve-code]", publisher.code())
        await approver.click("[data-testid=approve]")
        await expect(approver.get_by_test_id("news-status")).to_have_attribute("data-status", "sending")
        assert approver.url.endswith("/delivery")

        await run_workers(worker_ctx)
        # No reload: the page's Server-Sent Events stream brings the count (and, once the push
        # is finished, the final event reloads the page with the full tables).
        await expect(approver.get_by_test_id("sent-count")).to_have_text("8", timeout=15_000)
        await expect(approver.locator("table", has_text="android")).to_be_visible(timeout=15_000)
        await snap(approver, "delivery")
    finally:
        await publisher_context.close()
