"""Accessibility of the console (WCAG 2.1 AA), in a real browser, on every page, in both languages.

Each page is seeded with content (accounts, API clients, audit rows, news items through the real
pipeline, tracking tasks and their reminders, devices) and checked by axe-core (tests/console/axe.py):
no critical or serious violation. At phone width (390 px) no page scrolls sideways and the menu
stays on one line. In Vietnamese, no role, news status, priority or audit outcome shows as its
raw English identifier. The list of visited pages is checked against the console's route table,
so a new page cannot be missed.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from auth.roles import Role
from auth.totp import code_for
from console import labels
from console.app import create_console_app
from console.i18n import LANGUAGE_COOKIE, LANGUAGES
from core import clock
from core.db import transaction
from tests.console.axe import report, violations
from tests.console.browser import sign_in, snap
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import run_workers
from tests.sms.helpers import open_breaker
from tests.support.factories import Account, make_account, make_unit
from tests.tracking.helpers import confirm_all, make_org, set_clock, task, tick, upsert
from tracking import calendar as tracking_calendar
from tracking.models import Task
from tracking.schemas import CalendarDayIn

# GET routes that answer something other than a page (a redirect, a file, JSON, an event stream).
NOT_PAGES = {
    "/",
    "/admin/audit/export.csv",
    "/reports/export.csv",
    "/news/{item_id}/progress",
    "/live/figures",
    "/live/stream",
}

# Every page, by its route, with the session that reaches it.
PAGES = {
    "/login": "anonymous",
    "/mfa/verify": "verifying",
    "/mfa/enrol": "enrolling",
    "/password": "changing_password",
    "/home": "admin",
    "/sessions": "admin",
    "/delegations": "admin",
    "/admin/users": "admin",
    "/admin/users/new": "admin",
    "/admin/users/{user_id}": "admin",
    "/admin/fields": "admin",
    "/admin/api-clients": "admin",
    "/admin/audit": "admin",
    "/admin/devices": "admin",
    "/admin/apps": "admin",
    "/admin/apps/{app_code}": "admin",
    "/news": "admin",
    "/news/approvals": "admin",
    "/news/new": "admin",
    "/news/{item_id}": "admin",
    "/news/{item_id}/edit": "admin",
    "/news/{item_id}/delivery": "admin",
    "/tracking": "admin",
    "/tracking/tasks": "admin",
    "/tracking/tasks/{task_id}": "admin",
    "/passkeys": "admin",
    "/reports": "admin",
    "/admin/units": "admin",
    "/admin/units/{unit_id}": "admin",
    "/sections": "admin",
    "/sections/{code}": "admin",
    "/tracking/calendar": "admin",
    "/admin/sms": "admin",
    "/admin/breakers": "admin",
}

RAW_VALUES = set(labels.ROLES) | set(labels.NEWS_STATUSES) | set(labels.PRIORITIES) | set(labels.OUTCOMES)
# A raw identifier stands alone: not part of an action name (news.sent), a scope (news:draft),
# a username (editor12) or a path.
RAW_WORD = re.compile(r"(?<![\w.:/-])(" + "|".join(sorted(RAW_VALUES)) + r")(?![\w.:/-])")

# The page's visible words, minus what is deliberately an identifier (the help desk's error code,
# the audit rows' raw JSON details).
MAIN_TEXT = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('code, td.details').forEach(n => n.remove());
  return main.textContent;
}"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
MENU_ROWS = """() => {
  const links = [...document.querySelectorAll('header nav a')];
  return new Set(links.map(a => Math.round(a.getBoundingClientRect().top))).size;
}"""


def console_pages() -> set[str]:
    """Every GET route of the console app that renders a page."""
    paths = {
        context.path
        for context in iter_route_contexts(create_console_app().router.routes)
        if isinstance(context.original_route, APIRoute)
        and "GET" in (context.methods or ())
        and context.path is not None
    }
    assert len(paths) > 20
    return paths - NOT_PAGES


def test_the_accessibility_check_visits_every_page():
    assert set(PAGES) == console_pages(), "add the new page to PAGES (or NOT_PAGES if it is no page)"


async def _seed(client: Any) -> dict[str, Account]:
    """Content for every table and form: an organisation with tasks, reminders, API clients and
    accounts; devices; one news item sent through the pipeline and one draft."""
    org = await make_org(client)
    response = await upsert(
        client,
        org,
        task(org, "A11Y_LATE", deadline="2026-12-14"),
        task(org, "A11Y_SOON", deadline="2026-12-16"),
        task(org, "A11Y_LATER", deadline="2027-06-30", lead_unit=org.central.code),
    )
    assert response.status_code == 200, response.text
    await confirm_all()
    set_clock("2026-12-09 08:01:00")
    assert await tick(), "the seed needs reminders for the task page"
    set_clock("2026-12-15 09:00:00")
    await register_devices(
        [("fcm", f"a11y-fcm-{i:04d}-token", "vi") for i in range(3)]
        + [("apns", f"{i:064x}", "en") for i in range(2)]
    )
    accounts = {
        "admin": org.admin,
        "publisher": await make_account(role=Role.PUBLISHER, unit=org.central),
        "verifying": await make_account(role=Role.EDITOR, unit=org.province),
        "enrolling": await make_account(role=Role.EDITOR, unit=org.province, enrolled=False),
        "changing_password": await make_account(
            role=Role.EDITOR, unit=org.province, must_change_password=True
        ),
        "member": await make_account(role=Role.MEMBER, unit=org.province, enrolled=False),
    }
    # An ad-hoc day off for the calendar page, an open breaker for the breakers and SMS pages.
    async with transaction() as session:
        day_off = CalendarDayIn(day=dt.date(2026, 12, 31), kind="off", note="Nghỉ bù theo thông báo")
        await tracking_calendar.put_day(session, body=day_off)
    await open_breaker("fcm")
    return accounts


async def _compose(page: Page, live: str, *, title: str, action: str) -> str:
    await page.goto(f"{live}/console/news/new")
    await page.fill("[data-testid=article-id]", f"a11y-{uuid.uuid4().hex[:8]}")
    await page.fill("[data-testid=deep-link]", "chuong-portal://article/7")
    await page.fill("[data-testid=title-vi]", title)
    await page.fill("[data-testid=body-vi]", "Người dân theo dõi thông tin chính thức.")
    await page.click("label[for=tab-en]")
    await page.fill("[data-testid=title-en]", "Flood warning")
    await page.fill("[data-testid=body-en]", "Follow official updates.")
    await page.get_by_test_id("audience-total").wait_for()
    await page.click(f"button[name=action][value={action}]")
    await page.get_by_test_id("news-status").wait_for()
    return page.url.removesuffix("/").rsplit("/", 1)[-1]


async def _session(
    chromium: Any, live: str, who: str, account: Account | None, language: str
) -> tuple[BrowserContext, Page]:
    context = await chromium.new_context(viewport={"width": 1280, "height": 860})
    await context.add_cookies([{"name": LANGUAGE_COOKIE, "value": language, "url": live}])
    page = await context.new_page()
    if account is not None:
        # A password-only session for the second factor's pages; a full one otherwise.
        await sign_in(page, live, account, code=who not in ("verifying", "enrolling", "member"))
        await page.wait_for_load_state()
    return context, page


async def _check(page: Page, url: str, where: str, problems: list[str], texts: dict[str, str]) -> None:
    await page.set_viewport_size({"width": 1280, "height": 860})
    await page.goto(url)
    if "/news/new" in url or url.endswith("/edit"):
        await page.wait_for_load_state("networkidle")  # the live preview has arrived
    await _audit(page, where, problems, texts)


async def _audit(page: Page, where: str, problems: list[str], texts: dict[str, str]) -> None:
    """axe on the page as it is, then the same page at phone width."""
    await page.set_viewport_size({"width": 1280, "height": 860})
    found = await violations(page)
    if found:
        problems.append(report(where, found))
    await page.set_viewport_size({"width": 390, "height": 844})
    overflow = await page.evaluate(OVERFLOW)
    if overflow > 0:
        problems.append(f"{where}: at 390 px the page scrolls sideways by {overflow} px")
    rows = await page.evaluate(MENU_ROWS)
    if rows > 1:
        problems.append(f"{where}: at 390 px the menu takes {rows} lines")
    if where == "vi /admin/users":
        await snap(page, "phone-accounts")
    texts[where] = await page.evaluate(MAIN_TEXT)
    await page.set_viewport_size({"width": 1280, "height": 860})


async def _answers_to_forms(
    contexts: dict[str, tuple[BrowserContext, Page]],
    accounts: dict[str, Account],
    language: str,
    problems: list[str],
    texts: dict[str, str],
) -> None:
    """Pages that only a POST shows: the enrolment key and QR code, the recovery codes, a new API
    client's key."""
    enrolling = contexts["enrolling"][1]
    await enrolling.goto(enrolling.url.split("/console/")[0] + "/console/mfa/enrol")
    await enrolling.click("[data-testid=start-enrolment]")
    secret = (await enrolling.get_by_test_id("totp-secret").inner_text()).strip()
    await _audit(enrolling, f"{language} /mfa/enrol (key shown)", problems, texts)
    clock.advance(30)
    await enrolling.fill("input[name=code]", code_for(secret, at=clock.utcnow()))
    await enrolling.click("[data-testid=confirm-enrolment]")
    await enrolling.get_by_test_id("recovery-codes").wait_for()
    await _audit(enrolling, f"{language} /mfa/enrol/confirm (recovery codes)", problems, texts)

    admin = contexts["admin"][1]
    await admin.goto(admin.url.split("/console/")[0] + "/console/admin/api-clients")
    form = admin.locator("form:has([data-testid=create-client])")
    await form.locator("input[name=name]").fill("Cổng thông tin tỉnh")
    await form.locator("input[name=scopes]").first.check()
    await form.locator("input[name=totp_code]").fill(accounts["admin"].code())
    await admin.click("[data-testid=create-client]")
    await admin.get_by_test_id("new-key").wait_for()
    await _audit(admin, f"{language} /admin/api-clients (key shown)", problems, texts)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_page_passes_axe_and_fits_a_phone(live, chromium, client, worker_ctx, language):
    accounts = await _seed(client)
    contexts: dict[str, tuple[BrowserContext, Page]] = {}
    try:
        for who in {*PAGES.values(), "member", "publisher"}:
            account = None if who == "anonymous" else accounts[who]
            contexts[who] = await _session(chromium, live, who, account, language)
        admin = contexts["admin"][1]
        sent_id = await _compose(admin, live, title="Cảnh báo lũ trên sông Hồng", action="submit")
        draft_id = await _compose(admin, live, title="Bản tin chưa gửi", action="save")
        approver = contexts["publisher"][1]
        await approver.goto(f"{live}/console/news/{sent_id}")
        await approver.fill("[data-testid=approve-code]", accounts["publisher"].code())
        await approver.click("[data-testid=approve]")
        await approver.wait_for_url(re.compile(r".*/delivery$"))
        await run_workers(worker_ctx)

        async with transaction() as session:
            task_id = (await session.execute(select(Task.id).where(Task.code == "A11Y_LATE"))).scalar_one()
        ids = {
            "user_id": str(accounts["verifying"].id),
            "item_id": sent_id,
            "task_id": str(task_id),
            "unit_id": str(accounts["verifying"].unit_id),
            "code": "van-kien",
            "app_code": "portal",
        }
        problems: list[str] = []
        texts: dict[str, str] = {}
        for route, who in PAGES.items():
            path = route.format(**ids)
            if route == "/news/{item_id}/edit":
                path = route.format(item_id=draft_id)
            await _check(contexts[who][1], f"{live}/console{path}", f"{language} {route}", problems, texts)
        for where, (who, path) in {
            "error 404": ("admin", f"/news/{uuid.uuid4()}"),
            "error 403": ("member", "/admin/users"),  # access denied
        }.items():
            await _check(contexts[who][1], f"{live}/console{path}", f"{language} {where}", problems, texts)
            assert f"({where.split()[1]})" in texts[f"{language} {where}"], "not the error page"
        await _answers_to_forms(contexts, accounts, language, problems, texts)
        if language == "vi":
            for where, text in texts.items():
                raw = sorted(set(RAW_WORD.findall(text)))
                if raw:
                    problems.append(f"{where}: raw English values in the Vietnamese page: {raw}")
        assert not problems, "\n" + "\n".join(problems)
    finally:
        for context, _page in contexts.values():
            await context.close()


async def test_keyboard_and_screen_reader_cues_of_the_compose_form(live, browser_context: BrowserContext):
    """What axe cannot judge: the skip link comes first, a focused language tab shows its focus,
    and the byte meter speaks through its live region after typing."""
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    page = await browser_context.new_page()
    await sign_in(page, live, editor)
    await page.goto(f"{live}/console/news/new")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.dataset.testid") == "skip-link"
    await page.keyboard.press("Enter")
    assert page.url.endswith("#content")

    await page.focus("[data-testid=deep-link]")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "tab-vi"
    outline = await page.evaluate(
        "getComputedStyle(document.querySelector('label[for=tab-vi]')).outlineStyle"
    )
    assert outline == "solid"
    await page.keyboard.press("ArrowRight")  # the next language, as radio buttons do
    assert await page.evaluate("document.activeElement.id") == "tab-en"
    await expect(page.get_by_test_id("title-en")).to_be_visible()
    await page.keyboard.press("ArrowLeft")
    await expect(page.get_by_test_id("title-vi")).to_be_visible()

    status = page.get_by_test_id("byte-status")
    assert await status.get_attribute("aria-live") == "polite"
    await page.fill("[data-testid=article-id]", "bai-42")
    await page.fill("[data-testid=deep-link]", "chuong-portal://article/42")
    await page.fill("[data-testid=title-vi]", "Bão số 3")
    await page.fill("[data-testid=body-vi]", "Người dân theo dõi thông tin chính thức.")
    await expect(page.get_by_test_id("bytes-vi-android")).to_contain_text("/ 4096 B")
    await expect(status).to_contain_text("VI Android:")
    await expect(status).to_contain_text("trên 4096 byte")
    await page.fill("[data-testid=body-vi]", "Ư" * 2000)  # 6,000 bytes of UTF-8: over the limit
    await expect(status).to_contain_text("quá lớn")
