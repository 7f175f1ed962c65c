"""The Apps page in a real browser: a system admin adds an app from the menu, then disables it."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect
from sqlalchemy import text

from auth.roles import Role
from tests.console.browser import sign_in, snap
from tests.support.factories import make_account, make_unit


async def test_system_admin_adds_an_app_and_disables_it(live, browser_context: BrowserContext, owner_engine):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    page = await browser_context.new_page()
    await sign_in(page, live, admin)
    await page.get_by_test_id("main-menu").get_by_role("link", name="Ứng dụng di động", exact=True).click()
    await expect(page.get_by_test_id("apps").locator("tbody tr")).to_have_count(2)
    await snap(page, "apps")

    await page.fill("input[name=code]", "handbook")
    await page.fill("input[name=name]", "Sổ tay đảng viên")
    for language in ("zh", "fr", "es", "ru"):
        await page.uncheck(f"input[name=languages][value={language}]")
    await page.fill("input[name=fcm_project_id]", "handbook-project")
    await page.fill("input[name=apns_topic]", "vn.dang.handbook")
    await page.click("[data-testid=create-app]")
    await expect(page.get_by_test_id("done")).to_have_text("Đã tạo ứng dụng.")
    await expect(page.get_by_test_id("app-name")).to_contain_text("Sổ tay đảng viên")

    await page.uncheck("[data-testid=app-enabled]")
    await page.click("[data-testid=save-app]")
    await expect(page.get_by_test_id("done")).to_contain_text("Đã lưu ứng dụng")
    await page.goto(f"{live}/console/admin/apps")
    await expect(page.locator("tr[data-app=handbook]")).to_contain_text("đã tắt")
    async with owner_engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM apps WHERE code = 'handbook'"))).mappings().one()
    assert (row["enabled"], row["languages"], row["fcm_project_id"], row["apns_topic"]) == (
        False,
        ["vi", "en"],
        "handbook-project",
        "vn.dang.handbook",
    )
