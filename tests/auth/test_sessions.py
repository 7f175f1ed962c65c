"""Tokens and immediate revocation (D-23)."""

import asyncio
import base64
import json

import jwt
from sqlalchemy import text

from auth.roles import Role
from core import clock
from core.config import get_settings
from tests.support.factories import make_account, make_unit, sign_in


async def _login_full(client, account) -> dict:
    response = await client.post(
        "/v1/auth/login",
        json={"username": account.username, "password": account.password, "totp_code": account.code()},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_disabling_a_user_ends_their_tokens_on_the_next_request(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    editor_headers = await sign_in(client, editor)
    assert (await client.get("/v1/auth/me", headers=editor_headers)).status_code == 200
    admin_headers = await sign_in(client, admin)
    assert (await client.post(f"/v1/users/{editor.id}/disable", headers=admin_headers)).status_code == 200
    response = await client.get("/v1/auth/me", headers=editor_headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_revoked"
    # …and a disabled account cannot sign in again.
    assert (
        await client.post("/v1/auth/login", json={"username": editor.username, "password": editor.password})
    ).status_code == 401


async def test_role_or_unit_change_ends_tokens_and_refresh_tokens(client):
    root = await make_unit()
    other = await make_unit(parent=root)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
    editor = await make_account(role=Role.EDITOR, unit=root)
    tokens = await _login_full(client, editor)
    admin_headers = await sign_in(client, admin)
    changed = await client.patch(
        f"/v1/users/{editor.id}", headers=admin_headers, json={"unit_id": str(other.id)}
    )
    assert changed.status_code == 200, changed.text
    assert (
        await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401


async def test_admin_ending_one_session_leaves_the_others(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    editor = await make_account(role=Role.EDITOR, unit=unit)
    first, second = await _login_full(client, editor), await _login_full(client, editor)
    admin_headers = await sign_in(client, admin)
    ended = await client.delete(
        f"/v1/users/{editor.id}/sessions/{first['session_id']}", headers=admin_headers
    )
    assert ended.status_code == 204
    assert (
        await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {first['access_token']}"})
    ).status_code == 401
    assert (
        await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {second['access_token']}"})
    ).status_code == 200


async def test_user_lists_and_ends_own_sessions_and_signs_out_everywhere(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    first, second = await _login_full(client, editor), await _login_full(client, editor)
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    listed = (await client.get("/v1/auth/sessions", headers=headers)).json()
    assert {s["id"] for s in listed} == {first["session_id"], second["session_id"]}
    assert [s["current"] for s in listed if s["id"] == first["session_id"]] == [True]
    assert (await client.post("/v1/auth/sessions/revoke-all", headers=headers)).status_code == 204
    for tokens in (first, second):
        assert (
            await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        ).status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _login_full(client, editor)
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    # The old refresh token shows up again: someone copied it. The whole session ends.
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401
    assert (
        await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"})
    ).status_code == 401
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    ).status_code == 401


async def test_concurrent_refresh_of_one_token_gives_one_success(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _login_full(client, editor)
    results = await asyncio.gather(
        *(client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(4))
    )
    assert sorted(r.status_code for r in results).count(200) == 1


def _forge(payload: dict, header: dict, signature: bytes = b"") -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{b64(signature)}"


async def test_bad_tokens_get_401(client):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _login_full(client, editor)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    settings = get_settings()
    keys = settings.jwt_keyring()
    cases = {
        "alg none": _forge(claims, {"alg": "none", "typ": "JWT", "kid": settings.jwt_active_kid}),
        "wrong audience": jwt.encode(
            {**claims, "aud": "someone-else"},
            keys[settings.jwt_active_kid],
            algorithm="HS256",
            headers={"kid": settings.jwt_active_kid},
        ),
        "wrong issuer": jwt.encode(
            {**claims, "iss": "evil"},
            keys[settings.jwt_active_kid],
            algorithm="HS256",
            headers={"kid": settings.jwt_active_kid},
        ),
        "unknown kid": jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": "nope"}),
        "bad signature": tokens["access_token"][:-4]
        + ("AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"),
        "HS512 not allowed": jwt.encode(
            claims, keys[settings.jwt_active_kid], algorithm="HS512", headers={"kid": settings.jwt_active_kid}
        ),
        "garbage": "not-a-jwt",
    }
    for name, token in cases.items():
        response = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] in ("invalid_token", "token_expired"), name
    clock.advance(settings.access_token_ttl_seconds + 10)
    expired = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    assert (await client.get("/v1/auth/me")).status_code == 401


async def test_older_signing_key_still_verifies_after_rotation(client, monkeypatch):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    tokens = await _login_full(client, editor)
    monkeypatch.setattr(get_settings(), "jwt_active_kid", "test-0")
    assert (
        await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    ).status_code == 200


async def test_password_change_required_at_first_sign_in_and_after_max_age(client, owner_engine):
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit, must_change_password=True)
    tokens = await _login_full(client, editor)
    assert tokens["restriction"] == "password_change_required"
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/v1/auth/sessions", headers=headers)).status_code == 403
    weak = await client.post(
        "/v1/auth/password",
        headers=headers,
        json={"current_password": editor.password, "new_password": "password1234"},
    )
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    short = await client.post(
        "/v1/auth/password",
        headers=headers,
        json={"current_password": editor.password, "new_password": "Xq9!short"},
    )
    assert short.status_code == 422
    ok = await client.post(
        "/v1/auth/password",
        headers=headers,
        json={"current_password": editor.password, "new_password": "river quietly folds 1975 lanterns"},
    )
    assert ok.status_code == 204, ok.text
    assert (await client.get("/v1/auth/sessions", headers=headers)).status_code == 200
    # Past the maximum age the same restriction comes back.
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET password_changed_at = now() - interval '200 days' WHERE id = :id"),
            {"id": editor.id},
        )
    assert (await client.get("/v1/auth/sessions", headers=headers)).status_code == 403
