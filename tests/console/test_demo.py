"""`chuong demo seed`: a newcomer can sign in to the console with what it prints."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from auth.roles import Role
from auth.totp import code_for
from console.demo import seed
from core import clock
from core.db import transaction
from core.errors import Conflict
from devices.models import Device
from tests.console.support import csrf_from


async def test_demo_seed_creates_accounts_that_sign_in_and_devices(console):
    async with transaction() as session:
        result = await seed(session)
    roles = {account.role for account in result.accounts}
    assert roles == {Role.SYSTEM_ADMIN, Role.PUBLISHER, Role.EDITOR}
    admin = next(a for a in result.accounts if a.role == Role.SYSTEM_ADMIN)
    assert admin.otpauth_uri.startswith("otpauth://totp/") and admin.totp_secret in admin.otpauth_uri
    async with transaction() as session:
        devices = (await session.execute(select(func.count()).select_from(Device))).scalar_one()
    assert devices == result.devices > 0

    page = await console.get("/console/login")
    clock.advance(30)
    response = await console.post(
        "/console/login",
        data={
            "csrf_token": csrf_from(page.text),
            "username": admin.username,
            "password": admin.password,
            "totp_code": code_for(admin.totp_secret, at=clock.utcnow()),
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    stats = await console.get("/console/admin/devices")
    assert stats.status_code == 200
    assert f"<strong>{result.devices}</strong>" in stats.text

    with pytest.raises(Conflict):
        async with transaction() as session:
            await seed(session)


async def test_the_demo_seed_command_prints_how_to_sign_in(database_url):
    from tests.cli.test_admin_create import run_cli

    result = run_cli(database_url, "demo", "seed")
    assert result.returncode == 0, result.stderr
    for username in ("demo.admin", "demo.publisher", "demo.editor"):
        assert username in result.stdout
    assert result.stdout.count("otpauth://totp/") == 3
    again = run_cli(database_url, "demo", "seed")
    assert again.returncode == 1 and "exists already" in again.stderr
