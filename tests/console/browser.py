"""A real browser against the real app: uvicorn on a free port in the test's own event loop (so it
shares the per-test database, Redis and the controllable clock), driven by Playwright through
Debian's Chromium (``scripts/dev.sh test`` installs it; no browser download)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from playwright.async_api import Page

from tests.support.factories import Account

CHROMIUM = os.environ.get("CHUONG_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS_ENV = "CHUONG_CONSOLE_SCREENSHOTS"
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "console"


@asynccontextmanager
async def serve(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


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
