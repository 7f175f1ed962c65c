"""The push report in a real browser: an editor picks a period and app in the form, reads the
table and downloads the CSV."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from tests.console.browser import sign_in, snap
from tests.news.report_rows import portals_with_pushes


async def test_editor_reads_the_weekly_report_and_downloads_the_csv(
    live, browser_context: BrowserContext, owner_engine
):
    _, _, _, editor_a = await portals_with_pushes(owner_engine)
    page = await browser_context.new_page()
    await sign_in(page, live, editor_a)
    await page.goto(f"{live}/console/reports")
    await page.select_option("[data-testid=report-period]", "month")
    await page.fill("[data-testid=report-start]", "2026-01-01")
    await page.fill("[data-testid=report-end]", "2026-01-31")
    await page.select_option("[data-testid=report-app]", "portal")
    await page.click("[data-testid=report-show]")

    totals = page.get_by_test_id("report-total")
    # January for portal A: 3 pushes, 7 devices, 5 readers reached, 2 opened (40.0 %).
    await expect(totals).to_contain_text("2026-01-01")
    await expect(totals.locator("tbody tr")).to_have_count(1)
    await expect(totals.locator("tbody tr td").nth(3)).to_have_text("3")
    await expect(totals).to_contain_text("40.0 %")
    await expect(page.get_by_test_id("report-section")).to_contain_text("tất cả người đọc")
    await snap(page, "reports")

    async with page.expect_download() as info:
        await page.click("[data-testid=report-csv]")
    download = await info.value
    path = await download.path()
    content = path.read_bytes().decode("utf-8")
    assert content.startswith("\ufeff") and "Cổng Hà Nội" in content and '"month"' in content
