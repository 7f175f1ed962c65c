"""The console in a real browser (headless Chromium through Playwright)."""

from __future__ import annotations

import csv
import io

from playwright.async_api import BrowserContext, expect

from auth.roles import Role
from auth.totp import code_for
from core import clock
from tests.console.browser import sign_in, snap
from tests.support.factories import make_account, make_unit

SCRIPT_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


async def test_sign_in_with_password_and_totp(live, browser_context: BrowserContext):
    unit = await make_unit(name="Bộ Thông tin và Truyền thông")
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    page = await browser_context.new_page()
    await page.goto(f"{live}/console/login")
    await snap(page, "login")
    await sign_in(page, live, admin)
    await expect(page.get_by_test_id("welcome")).to_contain_text("Nguyễn Văn")
    assert page.url.endswith("/console/home")
    await snap(page, "home")
    # The language switch: English on request, Vietnamese by default.
    assert "Xin chào" in await page.get_by_test_id("welcome").inner_text()
    await page.click("[data-testid=lang-en]")
    await expect(page.get_by_test_id("welcome")).to_contain_text("Welcome")


async def test_a_wrong_code_keeps_the_user_out(live, browser_context: BrowserContext):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    page = await browser_context.new_page()
    await page.goto(f"{live}/console/login")
    await page.fill("input[name=username]", editor.username)
    await page.fill("input[name=password]", editor.password)
    await page.fill("input[name=totp_code]", "123456")
    await page.click("[data-testid=sign-in]")
    await expect(page.get_by_test_id("login-error")).to_be_visible()
    response = await page.goto(f"{live}/console/home")
    assert response is not None and "/console/login" in page.url


async def test_enrolment_shows_the_qr_code_and_recovery_codes_once(live, browser_context: BrowserContext):
    unit = await make_unit()
    newcomer = await make_account(role=Role.EDITOR, unit=unit, enrolled=False)
    page = await browser_context.new_page()
    await sign_in(page, live, newcomer, code=False)
    assert page.url.endswith("/console/mfa/enrol")
    await page.click("[data-testid=start-enrolment]")
    await expect(page.locator("[data-testid=qr] svg")).to_be_visible()
    secret = (await page.get_by_test_id("totp-secret").inner_text()).strip()
    await snap(page, "enrolment")
    clock.advance(30)
    await page.fill("input[name=code]", code_for(secret, at=clock.utcnow()))
    await page.click("[data-testid=confirm-enrolment]")
    # all_inner_texts does not wait: on a loaded machine the page may still be on its way.
    await expect(page.locator("[data-testid=recovery-codes] li")).to_have_count(10)
    codes = await page.locator("[data-testid=recovery-codes] li").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    await snap(page, "recovery-codes")
    await page.click("[data-testid=continue]")
    await expect(page.get_by_test_id("welcome")).to_be_visible()
    # Never again: the enrolment page offers no secret and no codes, and starting over is refused.
    await page.goto(f"{live}/console/mfa/enrol")
    content = await page.content()
    assert secret not in content and not any(code in content for code in codes)
    await page.click("[data-testid=start-enrolment]")
    await expect(page.get_by_test_id("error")).to_contain_text("409")
    assert secret not in await page.content()


async def test_a_script_in_a_user_supplied_name_renders_inert(live, browser_context: BrowserContext):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    victim = await make_account(role=Role.EDITOR, unit=unit)
    from sqlalchemy import update

    from auth.models import User
    from core.db import transaction

    async with transaction() as session:
        await session.execute(update(User).where(User.id == victim.id).values(full_name=SCRIPT_NAME))
    page = await browser_context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await sign_in(page, live, admin)
    await page.goto(f"{live}/console/admin/users")
    await expect(page.get_by_test_id("users")).to_contain_text("<script>window.__pwned = 1</script>")
    await snap(page, "users")
    await page.goto(f"{live}/console/admin/users/{victim.id}")
    await expect(page.get_by_test_id("user-name")).to_contain_text("<script>")
    assert await page.evaluate("window.__pwned") is None
    assert dialogs == []


async def test_csv_export_from_the_audit_viewer_neutralises_formulas(live, browser_context: BrowserContext):
    unit = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    formula = '=HYPERLINK("http://evil.example","x")'
    page = await browser_context.new_page()
    # A failed sign-in whose username is a formula lands in the audit log.
    await page.goto(f"{live}/console/login")
    await page.fill("input[name=username]", formula)
    await page.fill("input[name=password]", "wrong password")
    await page.click("[data-testid=sign-in]")
    await sign_in(page, live, admin)
    await page.goto(f"{live}/console/admin/audit")
    await page.fill("[data-testid=filter-action]", "auth.*")
    await page.click("[data-testid=filter]")
    await expect(page.get_by_test_id("audit")).to_contain_text("auth.login_failed")
    await snap(page, "audit")
    async with page.expect_download() as info:
        await page.click("[data-testid=export-csv]")
    download = await info.value
    path = await download.path()
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    assert body, "the export is empty"
    assert any("HYPERLINK" in row[header.index("details")] for row in body)
    for row in body:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), cell


async def test_disabling_an_account_refuses_its_open_console_session_on_the_next_click(
    live, chromium, browser_context: BrowserContext
):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    editor_context = await chromium.new_context()
    try:
        editor_page = await editor_context.new_page()
        await sign_in(editor_page, live, editor)
        await expect(editor_page.get_by_test_id("welcome")).to_be_visible()

        admin_page = await browser_context.new_page()
        await sign_in(admin_page, live, admin)
        await admin_page.goto(f"{live}/console/admin/users/{editor.id}")
        await snap(admin_page, "account")
        await admin_page.click("[data-testid=disable]")
        await expect(admin_page.get_by_test_id("done")).to_be_visible()
        await expect(admin_page.get_by_test_id("user-status")).to_contain_text("khoá")

        # The editor's next click: refused, back to the sign-in page.
        await editor_page.click("text=Phiên đăng nhập của tôi")
        await expect(editor_page.get_by_test_id("revoked")).to_be_visible()
        assert "/console/login" in editor_page.url
        # …and the account cannot sign in again.
        await sign_in(editor_page, live, editor)
        await expect(editor_page.get_by_test_id("login-error")).to_be_visible()
    finally:
        await editor_context.close()


async def test_csrf_missing_or_wrong_is_refused_and_headers_are_set(live, browser_context: BrowserContext):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    page = await browser_context.new_page()
    await sign_in(page, live, editor)
    response = await page.goto(f"{live}/console/sessions")
    assert response is not None
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    await snap(page, "sessions")
    # The browser's own cookies, but no token / a wrong one.
    missing = await page.request.post(f"{live}/console/sessions/revoke-all", form={"x": "1"})
    assert missing.status == 403
    wrong = await page.request.post(f"{live}/console/sessions/revoke-all", form={"csrf_token": "A" * 43})
    assert wrong.status == 403
    await page.goto(f"{live}/console/home")
    await expect(page.get_by_test_id("welcome")).to_be_visible()
    # The real button carries the token: sign out everywhere works.
    await page.goto(f"{live}/console/sessions")
    await page.click("[data-testid=sign-out-everywhere]")
    assert "/console/login" in page.url
