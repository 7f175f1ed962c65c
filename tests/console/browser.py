"""A real browser against the real app: uvicorn on a free port in the test's own event loop (so it
shares the per-test database, Redis and the controllable clock), driven by Playwright through
Debian's Chromium (``scripts/dev.sh test`` installs it; no browser download)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.async_api import Page

from tests.support.factories import Account

CHROMIUM = os.environ.get("CHUONG_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS_ENV = "CHUONG_CONSOLE_SCREENSHOTS"
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "console"


async def sign_in(page: Page, live: str, account: Account, *, code: bool = True) -> None:
    """Through the sign-in form, with a fresh TOTP code unless ``code`` is False."""
    await page.goto(f"{live}/console/login")
    await page.fill("input[name=username]", account.username)
    await page.fill("input[name=password]", account.password)
    if code:
        await page.fill("input[name=totp_code]", account.code())
    await page.click("[data-testid=sign-in]")


async def snap(page: Page, name: str) -> None:
    """Keep a screenshot for the docs when CHUONG_CONSOLE_SCREENSHOTS=1."""
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"), full_page=True)
