"""Console test helpers (httpx): sign in through the console's own forms."""

from __future__ import annotations

import re

import httpx

from tests.support.factories import Account

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def console_sign_in(http: httpx.AsyncClient, account: Account) -> str:
    """Password + TOTP through /console/login; returns the CSRF token for later forms."""
    page = await http.get("/console/login")
    token = csrf_from(page.text)
    response = await http.post(
        "/console/login",
        data={
            "csrf_token": token,
            "username": account.username,
            "password": account.password,
            "totp_code": account.code() if account.totp_secret else "",
            "next": "/home",
        },
    )
    assert response.status_code == 303, response.text
    home = await http.get(response.headers["location"])
    assert home.status_code == 200, home.text
    return csrf_from(home.text)
