"""``chuong demo seed``: accounts and emulated devices so that a newcomer can open the console.

Creates (once) a demo unit with a system admin, a publisher and an editor, each with a random
password and an already-enrolled TOTP secret (printed, with its otpauth:// URI for an
authenticator app), plus a set of anonymous portal-app devices whose tokens the local FCM/APNs
emulator accepts. For development machines only: it refuses to run when the environment is
``production``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass

import typer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import TotpCredential, Unit, User
from auth.passwords import hash_password
from auth.roles import Role
from auth.totp import new_secret, provisioning_uri
from auth.units import create_root_unit
from core.config import get_settings
from core.crypto import encrypt_text
from core.db import utcnow
from core.errors import Conflict
from devices import service as devices
from devices.schemas import DeviceRegister

DEMO_UNIT_CODE = "DEMO"
DEMO_ACCOUNTS = (
    ("demo.admin", "Quản trị Demo", Role.SYSTEM_ADMIN),
    ("demo.publisher", "Lãnh đạo Xuất bản Demo", Role.PUBLISHER),
    ("demo.editor", "Biên tập viên Demo", Role.EDITOR),
)
# (platform, locale, how many): enough to see the statistics and a fan-out per language.
DEMO_DEVICES = (
    ("android", "vi", 12),
    ("ios", "vi", 8),
    ("android", "en", 4),
    ("ios", "en", 3),
    ("android", "zh", 2),
)
_WORDS = ("song", "lua", "trang", "nui", "bien", "gio", "may", "sao", "hoa", "la", "cau", "thuyen")


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: Role
    password: str
    totp_secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class DemoSeed:
    accounts: list[DemoAccount]
    devices: int


def _password() -> str:
    # Long, random and memorable enough to type: passes the zxcvbn policy comfortably.
    words = [secrets.choice(_WORDS) for _ in range(4)]
    return "-".join(words) + f"-{secrets.randbelow(9000) + 1000}"


async def seed(session: AsyncSession) -> DemoSeed:
    if get_settings().environment == "production":
        raise Conflict("Refusing to create demo accounts in production", code="demo_in_production")
    existing = (await session.execute(select(Unit).where(Unit.code == DEMO_UNIT_CODE))).scalar_one_or_none()
    if existing is not None:
        raise Conflict("The demo data exists already (unit DEMO)", code="demo_exists")
    unit = await create_root_unit(session, code=DEMO_UNIT_CODE, name="Cổng thông tin Demo", kind="central")
    accounts = []
    now = utcnow()
    for username, full_name, role in DEMO_ACCOUNTS:
        password, secret = _password(), new_secret()
        user = User(
            id=uuid.uuid4(),
            username=username,
            full_name=full_name,
            unit_id=unit.id,
            role=role.value,
            password_hash=hash_password(password),
        )
        session.add(user)
        await session.flush()
        # Enrolled already: the secret is printed once, like `chuong admin create` does.
        session.add(TotpCredential(user_id=user.id, secret_enc=encrypt_text(secret), confirmed_at=now))
        audit.record(
            session,
            action="user.created",
            object_type="user",
            object_id=user.id,
            unit_id=unit.id,
            actor_kind="system",
            details={"username": username, "role": role.value, "demo": True},
        )
        uri = provisioning_uri(secret, account=username, issuer=get_settings().totp_issuer)
        accounts.append(DemoAccount(username, role, password, secret, uri))
    count = 0
    for platform, locale, how_many in DEMO_DEVICES:
        for _ in range(how_many):
            body = DeviceRegister(
                app="portal",
                platform=platform,
                # APNs tokens are 64 hex digits; FCM registration tokens are free-form.
                token=secrets.token_hex(32)
                if platform == "ios"
                else f"demo-{locale}-{secrets.token_hex(16)}",
                locale=locale,
                topics=["breaking"],
            )
            await devices.register(session, body=body, user_id=None)
            count += 1
    await session.flush()
    return DemoSeed(accounts=accounts, devices=count)


cli = typer.Typer(no_args_is_help=True, help="Demo data for development machines")


@cli.command("seed")
def seed_command() -> None:
    """Create the demo admin, publisher, editor and emulated devices; print how to sign in."""
    from core.db import dispose_engine, transaction
    from core.errors import ChuongError

    async def run() -> DemoSeed:
        try:
            async with transaction() as session:
                return await seed(session)
        finally:
            await dispose_engine()

    try:
        result = asyncio.run(run())
    except ChuongError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("Demo data created. Console: http://127.0.0.1:8000/console (shown once, keep it):")
    for account in result.accounts:
        typer.echo(f"\n  {account.role.value:<13} username: {account.username}")
        typer.echo(f"  {'':<13} password: {account.password}")
        typer.echo(f"  {'':<13} TOTP secret: {account.totp_secret}")
        typer.echo(f"  {'':<13} {account.otpauth_uri}")
    typer.echo(f"\n{result.devices} emulated portal-app devices registered (topic 'breaking').")
    typer.echo("No authenticator app at hand? `chuong demo code SECRET` prints the current code.")


@cli.command("code")
def code_command(secret: str) -> None:
    """Print the current TOTP code for a secret (development only: an authenticator in a shell)."""
    from auth.totp import code_for
    from core.clock import utcnow as now

    try:
        code = code_for(secret.strip().replace(" ", ""), at=now())
    except ValueError as exc:  # not base32, or too short: pyotp's own check
        typer.echo(f"error: not a TOTP secret (the secret= value of an otpauth:// URI): {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(code)
