"""Fixtures of the console tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
async def console(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """An httpx client with a cookie jar. The base URL is https so that the jar sends the
    console's Secure cookies (the ASGI transport never does TLS, so nothing else changes)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 52000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


@pytest.fixture(scope="session")
async def chromium():  # type: ignore[no-untyped-def]
    """One headless Chromium for the run (Debian's, never a downloaded build)."""
    from pathlib import Path

    from playwright.async_api import async_playwright

    from tests.console.browser import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/dev.sh test (it installs Debian's chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        await browser.close()


@pytest.fixture
async def live(app) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """The app served over HTTP on 127.0.0.1 (a secure context for Chromium, so Secure cookies work)."""
    from tests.support.live_server import serve

    async with serve(app) as base_url:
        yield base_url


@pytest.fixture
async def browser_context(chromium):  # type: ignore[no-untyped-def]
    context = await chromium.new_context(locale="vi-VN", viewport={"width": 1280, "height": 860})
    yield context
    await context.close()


# The in-process FCM/APNs emulator and worker context of the delivery tests, for the news flow.
from tests.notifications.conftest import emulated_settings, emulator, providers, worker_ctx  # noqa: E402, F401
