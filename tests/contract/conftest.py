"""Fixtures of the contract tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from auth.roles import Role
from tests.support.factories import Account, make_account, make_unit, sign_in


@dataclass
class Admin:
    account: Account
    headers: dict[str, str]
    member: Account


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> Admin:
    """A signed-in system admin (TOTP verified, so step-up is fresh) and a member of its unit."""
    unit = await make_unit()
    account = await make_account(role=Role.SYSTEM_ADMIN, unit=unit)
    member = await make_account(role=Role.MEMBER, unit=unit)
    return Admin(account=account, headers=await sign_in(client, account), member=member)


@pytest.fixture
async def lenient(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """Like ``client``, but an exception escaping the app arrives as the 500 a server would send."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("203.0.113.11", 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
