"""The units, sections, working-calendar, SMS degraded-mode and push-breaker pages in a real
browser: each reached from the menu, its main action done through its form (the confirmation
box and the two-factor code where the page asks for them), in Vietnamese, with no script error
and no CSP violation."""

from __future__ import annotations

from playwright.async_api import BrowserContext, Page, expect

from auth.roles import Role
from notifications import breaker
from tests.console.browser import sign_in, snap
from tests.sms.helpers import audit_rows, open_breaker
from tests.support.factories import make_account, make_unit

# A refused form answers 409 or 422 with the form again: the browser logs the status, nothing more.
REFUSED_FORM = tuple(
    f"Failed to load resource: the server responded with a status of {status}" for status in (409, 422)
)


def _watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"{message.text} {message.location.get('url')}")
            if message.type == "error"
            and not message.location.get("url", "").endswith("/favicon.ico")
            and not message.text.startswith(REFUSED_FORM)
            else None
        ),
    )
    page.on("dialog", lambda dialog: problems.append(dialog.message))
    return problems


async def _menu(page: Page, name: str) -> None:
    await page.get_by_test_id("main-menu").get_by_role("link", name=name, exact=True).click()


async def test_in_a_browser_an_admin_adds_a_unit_to_the_tree_and_renames_it(
    live, browser_context: BrowserContext
):
    root = await make_unit(name="Văn phòng Trung ương")
    await make_unit(parent=root, name="Tỉnh ủy Nam Định", code="NAMDINH")
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    page = await browser_context.new_page()
    problems = _watch(page)
    await sign_in(page, live, admin)
    await _menu(page, "Đơn vị")
    await expect(page.get_by_test_id("unit-tree")).to_contain_text("Tỉnh ủy Nam Định")
    await page.get_by_test_id("unit-parent").select_option(label="— Tỉnh ủy Nam Định")
    await page.get_by_test_id("unit-code").fill("NAMDINH")  # taken: refused in words, what was typed stays
    await page.get_by_test_id("unit-name").fill("Huyện Giao Thủy")
    await page.get_by_test_id("create-unit").click()
    await expect(page.get_by_test_id("form-error")).to_have_text("Đã có đơn vị mang mã này")
    await expect(page.get_by_test_id("unit-name")).to_have_value("Huyện Giao Thủy")
    await page.get_by_test_id("unit-code").fill("GIAOTHUY")
    await page.get_by_test_id("create-unit").click()
    await expect(page.get_by_test_id("done")).to_have_text("Đã tạo đơn vị.")
    await page.get_by_test_id("rename-name").fill("Huyện Giao Thủy (mới)")
    await page.get_by_test_id("rename-unit").click()
    await expect(page.get_by_test_id("unit-title")).to_have_text("Huyện Giao Thủy (mới)")
    await page.get_by_role("link", name="Tất cả đơn vị").click()
    tree = page.get_by_test_id("unit-tree")
    await expect(tree.locator("li[data-unit=NAMDINH] li[data-unit=GIAOTHUY]")).to_contain_text("(mới)")
    await snap(page, "units")
    assert problems == []


async def test_in_a_browser_a_portal_editor_creates_and_archives_a_section(
    live, browser_context: BrowserContext
):
    portal = await make_unit(name="Cổng Tỉnh ủy Nam Định")
    editor = await make_account(role=Role.EDITOR, unit=portal)
    page = await browser_context.new_page()
    problems = _watch(page)
    await sign_in(page, live, editor)
    await _menu(page, "Chuyên mục")
    await page.get_by_test_id("section-code").fill("nd-tin")
    await page.get_by_test_id("section-name-vi").fill("Tin Nam Định")
    await page.get_by_test_id("section-name-en").fill("Nam Dinh news")
    await page.get_by_test_id("create-section").click()
    await expect(page.get_by_test_id("done")).to_have_text("Đã tạo chuyên mục.")
    row = page.locator("tr[data-section=nd-tin]")
    await expect(row).to_contain_text("EN: Nam Dinh news")
    await snap(page, "sections")
    await page.get_by_test_id("edit-nd-tin").click()
    await page.get_by_test_id("archive-section").click()  # the box is not ticked: the browser holds the form
    await expect(page.get_by_test_id("section-title")).to_be_visible()
    await page.get_by_test_id("confirm-archive").check()
    await page.get_by_test_id("archive-section").click()
    await expect(page.get_by_test_id("done")).to_contain_text("Đã lưu trữ chuyên mục")
    await expect(page.locator("tr[data-section=nd-tin]")).to_have_count(0)
    assert [r.action for r in await audit_rows("news.section")] == [
        "news.section.created",
        "news.section.archived",
    ]
    assert problems == []


async def test_in_a_browser_a_system_admin_adds_a_day_off_to_the_calendar(
    live, browser_context: BrowserContext
):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    page = await browser_context.new_page()
    problems = _watch(page)
    await sign_in(page, live, admin)
    await _menu(page, "Lịch làm việc")
    await page.goto(f"{live}/console/tracking/calendar?year=2026")
    await expect(page.get_by_test_id("public-holidays")).to_contain_text("Tết Nguyên Đán")
    before = await page.get_by_test_id("working-days").inner_text()
    await page.get_by_test_id("calendar-day").fill("2026-12-31")
    await page.get_by_test_id("kind-off").check()
    await page.get_by_test_id("calendar-note").fill("Nghỉ bù theo thông báo của Chính phủ")
    await page.get_by_test_id("save-day").click()
    await expect(page.get_by_test_id("done")).to_contain_text("Đã lưu ngày")
    await expect(page.locator("tr[data-day='2026-12-31']")).to_contain_text("Thứ Năm")
    assert await page.get_by_test_id("working-days").inner_text() != before
    await snap(page, "calendar")
    row = page.locator("tr[data-day='2026-12-31']")
    await row.get_by_role("checkbox").check()
    await row.get_by_test_id("remove-2026-12-31").click()
    await expect(page.get_by_test_id("done")).to_contain_text("Đã bỏ điều chỉnh")
    await expect(page.get_by_test_id("working-days")).to_have_text(before)
    assert problems == []


async def test_in_a_browser_a_system_admin_switches_sms_degraded_mode_on(
    live, browser_context: BrowserContext
):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    await open_breaker("fcm")
    page = await browser_context.new_page()
    problems = _watch(page)
    await sign_in(page, live, admin)
    await _menu(page, "Chế độ dự phòng SMS")
    await expect(page.get_by_test_id("suggested")).to_be_visible()
    await page.get_by_test_id("degraded-reason-input").fill("FCM trả lỗi 503 hàng loạt")
    await page.get_by_test_id("degraded-confirm").check()
    await page.locator("[data-testid=degraded-form] input[name=totp_code]").fill(admin.code())
    await page.get_by_test_id("degraded-switch").click()
    await expect(page.get_by_test_id("done")).to_have_text("Đã bật chế độ dự phòng SMS.")
    await expect(page.get_by_test_id("changed-by")).to_contain_text(admin.username)
    await expect(page.get_by_test_id("degraded-reason")).to_have_text("FCM trả lỗi 503 hàng loạt")
    await expect(page.get_by_test_id("degraded-switch")).to_have_text("Tắt")
    await snap(page, "sms-degraded-mode")
    assert [r.action for r in await audit_rows("sms.degraded_mode")] == ["sms.degraded_mode.on"]
    assert problems == []


async def test_in_a_browser_a_system_admin_closes_an_open_breaker(live, browser_context: BrowserContext):
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=await make_unit())
    await open_breaker("apns:sandbox")
    page = await browser_context.new_page()
    problems = _watch(page)
    await sign_in(page, live, admin)
    await _menu(page, "Bộ ngắt mạch push")
    row = page.locator("tr[data-provider='apns:sandbox']")
    await expect(row).to_have_attribute("data-state", "open")
    await row.get_by_test_id("reset-reason-apns:sandbox").fill("Apple đã khắc phục sự cố")
    await row.get_by_test_id("reset-confirm-apns:sandbox").check()
    await row.locator("input[name=totp_code]").fill(admin.code())
    await snap(page, "push-breakers")
    await row.get_by_test_id("reset-apns:sandbox").click()
    await expect(page.get_by_test_id("done")).to_contain_text("Đã đóng bộ ngắt")
    await expect(page.locator("tr[data-provider='apns:sandbox']")).to_have_attribute("data-state", "closed")
    assert not (await breaker.state("apns:sandbox")).open
    assert problems == []
