"""Accounts and units for tests, created through the real services."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import uuid
from dataclasses import dataclass

import httpx

from auth.models import TotpCredential, Unit, User
from auth.passwords import hash_password
from auth.roles import Role
from auth.totp import code_for, new_secret
from core import clock
from core.crypto import encrypt_text
from core.db import transaction

PASSWORD = "correct horse battery staple 42"


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


_seq = itertools.count(1)


@dataclass
class Account:
    id: uuid.UUID
    username: str
    password: str
    role: Role
    unit_id: uuid.UUID
    totp_secret: str | None

    def code(self) -> str:
        """A code the authenticator would show now, one step ahead of the last one used, so that
        tests never trip the single-use rule by accident."""
        assert self.totp_secret is not None
        clock.advance(30)
        return code_for(self.totp_secret, at=clock.utcnow())


async def make_unit(*, parent: Unit | None = None, code: str | None = None, name: str = "Đơn vị") -> Unit:
    async with transaction() as session:
        unit_id = uuid.uuid4()
        unit = Unit(
            id=unit_id,
            parent_id=parent.id if parent else None,
            code=code or f"U{next(_seq)}",
            name=name,
            kind="province" if parent else "central",
            path=f"{parent.path if parent else ''}{unit_id.hex}/",
            depth=(parent.depth + 1) if parent else 0,
        )
        session.add(unit)
    return unit


async def make_account(
    *,
    role: Role,
    unit: Unit,
    enrolled: bool = True,
    active: bool = True,
    must_change_password: bool = False,
    username: str | None = None,
) -> Account:
    username = username or f"{role.value.replace('_', '')}{next(_seq)}"
    secret = new_secret() if enrolled else None
    async with transaction() as session:
        user = User(
            id=uuid.uuid4(),
            username=username,
            full_name=f"Nguyễn Văn {username}",
            unit_id=unit.id,
            role=role.value,
            password_hash=_password_hash(),
            is_active=active,
            must_change_password=must_change_password,
        )
        session.add(user)
        await session.flush()
        if secret is not None:
            session.add(
                TotpCredential(
                    user_id=user.id,
                    secret_enc=encrypt_text(secret),
                    confirmed_at=dt.datetime.now(dt.UTC),
                )
            )
    return Account(
        id=user.id, username=username, password=PASSWORD, role=role, unit_id=unit.id, totp_secret=secret
    )


async def sign_in(client: httpx.AsyncClient, account: Account) -> dict[str, str]:
    """Full sign-in (password + TOTP when enrolled); returns Authorization headers."""
    body: dict[str, str] = {"username": account.username, "password": account.password}
    if account.totp_secret:
        body["totp_code"] = account.code()
    response = await client.post("/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def password_only(client: httpx.AsyncClient, account: Account) -> dict[str, object]:
    response = await client.post(
        "/v1/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data
