"""Rotating the JWT signing key without downtime, step by step as docs/security.md "TLS and key
rotation" gives them: (1) list the new key, (2) make it the active one, (3) wait one access-token
lifetime, (4) remove the old key. Tokens signed with the old key keep working while it is listed
and expire as designed; new tokens carry the new key id; once the old key is removed its tokens
are refused, while the sessions behind them carry on through their refresh tokens."""

from __future__ import annotations

import json
import secrets

import jwt
import pytest
from pydantic import SecretStr

from auth.roles import Role
from core import clock
from core.config import get_settings
from tests.support.factories import make_account, make_unit

OLD, NEW = "2024-a", "2025-a"


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch):
    """Sets CHUONG_JWT_KEYS and CHUONG_JWT_ACTIVE_KID as an operator would (then restarts)."""
    secrets_by_kid = {OLD: secrets.token_urlsafe(48), NEW: secrets.token_urlsafe(48)}

    def configure(*, listed: tuple[str, ...], active: str) -> None:
        keys = json.dumps({kid: secrets_by_kid[kid] for kid in listed})
        monkeypatch.setattr(get_settings(), "jwt_keys", SecretStr(keys))
        monkeypatch.setattr(get_settings(), "jwt_active_kid", active)

    return configure


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_a_rotation_keeps_every_session_signed_in(client, keyring) -> None:
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    keyring(listed=(OLD,), active=OLD)
    login = await client.post(
        "/v1/auth/login",
        json={"username": editor.username, "password": editor.password, "totp_code": editor.code()},
    )
    old_token, refresh_token = login.json()["access_token"], login.json()["refresh_token"]
    assert kid_of(old_token) == OLD

    async def me(token: str) -> tuple[int, str | None]:
        answer = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        return answer.status_code, (answer.json().get("error") or {}).get("code")

    # (1) The new key is listed on every node first, so that none refuses what another signs.
    keyring(listed=(OLD, NEW), active=OLD)
    assert await me(old_token) == (200, None)

    # (2) The new key signs; tokens of the old one still verify.
    keyring(listed=(OLD, NEW), active=NEW)
    refreshed = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    new_token, refresh_token = refreshed.json()["access_token"], refreshed.json()["refresh_token"]
    assert kid_of(new_token) == NEW
    assert await me(old_token) == (200, None)

    # (3) One access-token lifetime later the old key's tokens have expired on their own.
    clock.advance(get_settings().access_token_ttl_seconds + 10)
    assert await me(old_token) == (401, "token_expired")

    # (4) The old key goes; the session carries on with a token of the new key.
    keyring(listed=(NEW,), active=NEW)
    again = await client.post("/v1/auth/refresh", json={"refresh_token": refresh_token})
    assert again.status_code == 200
    assert kid_of(again.json()["access_token"]) == NEW
    assert await me(again.json()["access_token"]) == (200, None)


async def test_a_token_of_a_removed_key_is_refused_even_before_it_expires(client, keyring) -> None:
    """Why step (3) waits: removing the old key at once signs everyone's current token out."""
    editor = await make_account(role=Role.EDITOR, unit=await make_unit())
    keyring(listed=(OLD, NEW), active=OLD)
    login = await client.post(
        "/v1/auth/login",
        json={"username": editor.username, "password": editor.password, "totp_code": editor.code()},
    )
    old_token = login.json()["access_token"]

    keyring(listed=(NEW,), active=NEW)
    answer = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {old_token}"})

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_token"
