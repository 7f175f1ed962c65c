"""Connected systems (D-40): keys shown once and stored hashed, suspension, rotation, allow-lists,
subtree scoping, step-up and audit of every change."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from api import client_ip
from auth.roles import Role
from core import clock
from core.config import get_settings
from core.crypto import keyed_hash
from tests.api_clients.helpers import audit_rows, bearer, client_from, create_client, secret_of
from tests.support.factories import make_account, make_unit, sign_in


@pytest.fixture
async def admin(client):
    unit = await make_unit()
    account = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    return account, await sign_in(client, account)


async def test_key_is_shown_once_and_only_its_hash_is_stored(client, admin, owner_engine):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    key = created["api_key"]
    assert key.startswith(f"chk_{created['key_id']}_")
    assert len(secret_of(key)) >= 43  # 32 random bytes

    fetched = await client.get(f"/v1/api-clients/{created['id']}", headers=headers)
    assert fetched.status_code == 200
    assert "api_key" not in fetched.json()
    assert key not in fetched.text

    async with owner_engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM api_clients"))).one()._mapping
        audit_text = (
            await conn.execute(text("SELECT string_agg(details::text, ' ') FROM audit_log"))
        ).scalar()
    assert row["key_hash"] == keyed_hash(key)
    assert all(key not in str(value) for value in row.values())
    assert secret_of(key) not in (audit_text or "")


async def test_client_authenticates_and_sees_its_own_credentials(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    me = await client.get("/v1/api-clients/me", headers=bearer(created["api_key"]))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["id"] == created["id"]
    assert body["scopes"] == ["notifications:send"]
    assert body["key_in_use"] == "current"
    assert body["last_used_at"] is not None
    assert "api_key" not in body


async def test_users_get_403_on_me_and_clients_cannot_manage(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    as_user = await client.get("/v1/api-clients/me", headers=headers)
    assert as_user.status_code == 403
    assert as_user.json()["error"]["code"] == "api_client_only"
    as_client = await client.get("/v1/api-clients", headers=bearer(created["api_key"]))
    assert as_client.status_code == 403
    assert as_client.json()["error"]["code"] == "api_client_not_allowed"


async def test_wrong_secret_or_unknown_key_id_is_401(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    key = created["api_key"]
    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown_id = "chk_" + "Z" * 12 + key[16:]
    for bad in (wrong_secret, unknown_id, "chk_short", "chk_" + "x" * 200):
        response = await client.get("/v1/api-clients/me", headers=bearer(bad))
        assert response.status_code == 401, bad
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_suspend_takes_effect_on_the_next_request_and_restore_undoes_it(client, admin, owner_engine):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    key_headers = bearer(created["api_key"])
    assert (await client.get("/v1/api-clients/me", headers=key_headers)).status_code == 200

    suspended = await client.post(f"/v1/api-clients/{created['id']}/suspend", headers=headers)
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    denied = await client.get("/v1/api-clients/me", headers=key_headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "api_client_suspended"
    again = await client.post(f"/v1/api-clients/{created['id']}/suspend", headers=headers)
    assert again.status_code == 409

    restored = await client.post(f"/v1/api-clients/{created['id']}/restore", headers=headers)
    assert restored.status_code == 200
    assert restored.json()["status"] == "active"
    assert (await client.get("/v1/api-clients/me", headers=key_headers)).status_code == 200

    denials = await audit_rows(owner_engine, "api_client.denied")
    assert [d["details"]["reason"] for d in denials] == ["suspended"]


async def test_rotation_keeps_the_old_key_for_the_grace_period_only(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    old = created["api_key"]
    rotated = await client.post(
        f"/v1/api-clients/{created['id']}/rotate", json={"grace_seconds": 3600}, headers=headers
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["api_key"]
    assert new != old
    assert rotated.json()["key_id"] == created["key_id"]

    assert (await client.get("/v1/api-clients/me", headers=bearer(new))).json()["key_in_use"] == "current"
    within = await client.get("/v1/api-clients/me", headers=bearer(old))
    assert within.status_code == 200
    assert within.json()["key_in_use"] == "previous"

    clock.advance(3601)
    assert (await client.get("/v1/api-clients/me", headers=bearer(old))).status_code == 401
    assert (await client.get("/v1/api-clients/me", headers=bearer(new))).status_code == 200


async def test_rotation_with_zero_grace_ends_the_old_key_at_once(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    rotated = await client.post(
        f"/v1/api-clients/{created['id']}/rotate", json={"grace_seconds": 0}, headers=headers
    )
    assert rotated.status_code == 200
    assert (await client.get("/v1/api-clients/me", headers=bearer(created["api_key"]))).status_code == 401
    assert (
        await client.get("/v1/api-clients/me", headers=bearer(rotated.json()["api_key"]))
    ).status_code == 200


async def test_ip_allowlist_is_enforced_and_denials_are_audited(app, client, admin, owner_engine):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id, ip_allowlist=["198.51.100.0/24"])
    key_headers = bearer(created["api_key"])
    for _ in range(2):  # a retrying system is audited once a minute, not once per call
        outside = await client.get("/v1/api-clients/me", headers=key_headers)  # from 203.0.113.10
        assert outside.status_code == 403
        assert outside.json()["error"]["code"] == "ip_not_allowed"
    async with client_from(app, "198.51.100.7") as inside:
        assert (await inside.get("/v1/api-clients/me", headers=key_headers)).status_code == 200

    denials = await audit_rows(owner_engine, "api_client.denied")
    assert len(denials) == 1
    assert denials[0]["details"] == {
        "reason": "ip_not_allowed",
        "key_id": created["key_id"],
        "ip": "203.0.113.10",
    }

    # A changed allow-list applies to the next request.
    patched = await client.patch(
        f"/v1/api-clients/{created['id']}", json={"ip_allowlist": ["203.0.113.0/24"]}, headers=headers
    )
    assert patched.status_code == 200
    assert (await client.get("/v1/api-clients/me", headers=key_headers)).status_code == 200


async def test_forwarded_for_is_honoured_only_from_a_trusted_proxy(app, client, admin, monkeypatch):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id, ip_allowlist=["198.51.100.7/32"])
    forwarded = {**bearer(created["api_key"]), "X-Forwarded-For": "198.51.100.7"}

    # The peer 203.0.113.10 is not a trusted proxy: its header is the client's own claim.
    assert (await client.get("/v1/api-clients/me", headers=forwarded)).status_code == 403

    monkeypatch.setattr(get_settings(), "trusted_proxies", ["203.0.113.0/24"])
    client_ip._trusted.cache_clear()
    try:
        assert (await client.get("/v1/api-clients/me", headers=forwarded)).status_code == 200
        async with client_from(app, "192.0.2.1") as untrusted:
            assert (await untrusted.get("/v1/api-clients/me", headers=forwarded)).status_code == 403
    finally:
        monkeypatch.undo()
        client_ip._trusted.cache_clear()


async def test_invalid_allowlist_and_unknown_scopes_are_rejected(client, admin):
    account, headers = admin
    for fields in (
        {"ip_allowlist": ["10.0.0.5/24"]},
        {"ip_allowlist": ["not-an-ip"]},
        {"scopes": ["everything"]},
    ):
        body = {"unit_id": str(account.unit_id), "name": "x", "scopes": ["devices:read"], **fields}
        response = await client.post("/v1/api-clients", json=body, headers=headers)
        assert response.status_code == 422, fields


async def test_unit_admin_cannot_see_or_manage_clients_of_another_subtree(client):
    root = await make_unit()
    unit_a, unit_b = await make_unit(parent=root), await make_unit(parent=root)
    admin_a = await make_account(role=Role.UNIT_ADMIN, unit=unit_a)
    admin_b = await make_account(role=Role.UNIT_ADMIN, unit=unit_b)
    admin_root = await make_account(role=Role.UNIT_ADMIN, unit=root)
    headers_a, headers_b = await sign_in(client, admin_a), await sign_in(client, admin_b)
    created = await create_client(client, headers_a, unit_a.id)
    path = f"/v1/api-clients/{created['id']}"

    assert (await client.get(path, headers=headers_b)).status_code == 404
    for action in ("suspend", "restore", "rotate"):
        assert (await client.post(f"{path}/{action}", headers=headers_b)).status_code == 404, action
    assert (await client.patch(path, json={"name": "y"}, headers=headers_b)).status_code == 404
    assert (await client.get("/v1/api-clients", headers=headers_b)).json()["items"] == []
    body = {"unit_id": str(unit_a.id), "name": "x", "scopes": []}
    assert (await client.post("/v1/api-clients", json=body, headers=headers_b)).status_code == 404

    # The admin of the parent unit sees the client of the child unit.
    listed = await client.get("/v1/api-clients", headers=await sign_in(client, admin_root))
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]


async def test_list_pages_with_a_cursor(client, admin):
    account, headers = admin
    ids = {
        (await create_client(client, headers, account.unit_id, name=f"Hệ thống {n}"))["id"] for n in range(3)
    }
    first = (await client.get("/v1/api-clients?limit=2", headers=headers)).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await client.get(f"/v1/api-clients?limit=2&cursor={first['next_cursor']}", headers=headers)
    ).json()
    assert second["next_cursor"] is None
    assert {item["id"] for item in first["items"] + second["items"]} == ids
    assert (await client.get("/v1/api-clients?cursor=bm9wZQ", headers=headers)).status_code == 400


async def test_mutations_need_a_fresh_step_up_and_reads_do_not(client, admin):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    clock.advance(301)
    for method, path, body in (
        ("POST", "/v1/api-clients", {"unit_id": str(account.unit_id), "name": "x", "scopes": []}),
        ("POST", f"/v1/api-clients/{created['id']}/suspend", None),
        ("POST", f"/v1/api-clients/{created['id']}/rotate", None),
        ("PATCH", f"/v1/api-clients/{created['id']}", {"name": "y"}),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "step_up_required"
    assert (await client.get(f"/v1/api-clients/{created['id']}", headers=headers)).status_code == 200

    verified = await client.post("/v1/auth/mfa/verify", json={"code": account.code()}, headers=headers)
    assert verified.status_code == 204
    assert (await client.post(f"/v1/api-clients/{created['id']}/suspend", headers=headers)).status_code == 200


async def test_every_mutation_writes_an_audit_row_without_secrets(client, admin, owner_engine):
    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    path = f"/v1/api-clients/{created['id']}"
    assert (
        await client.patch(path, json={"name": "Mới", "scopes": ["devices:read"]}, headers=headers)
    ).is_success
    rotated = await client.post(f"{path}/rotate", headers=headers)
    assert (await client.post(f"{path}/suspend", headers=headers)).is_success
    assert (await client.post(f"{path}/restore", headers=headers)).is_success
    # A PATCH that changes nothing is not a change.
    assert (await client.patch(path, json={"name": "Mới"}, headers=headers)).is_success

    rows = await audit_rows(owner_engine, "api_client.")
    assert [r["action"] for r in rows] == [
        "api_client.created",
        "api_client.updated",
        "api_client.rotated",
        "api_client.suspended",
        "api_client.restored",
    ]
    assert all(r["object_id"] == created["id"] for r in rows)
    assert rows[1]["details"]["scopes"] == {"from": ["notifications:send"], "to": ["devices:read"]}
    assert rows[2]["details"]["grace_seconds"] == 86400
    dumped = str([r["details"] for r in rows])
    for key in (created["api_key"], rotated.json()["api_key"]):
        assert secret_of(key) not in dumped


async def test_two_rotations_at_once_answer_keys_that_both_work(client, admin, owner_engine):
    # Both read the row before either wrote it: the second overwrote the first's key without
    # making it the previous one, so a key the API had just handed out never worked.
    from tests.support.held_rows import while_held

    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    rotate = f"/v1/api-clients/{created['id']}/rotate"
    answers = await while_held(
        owner_engine,
        "SELECT 1 FROM api_clients WHERE id = :id FOR UPDATE",
        {"id": created["id"]},
        *(client.post(rotate, json={"grace_seconds": 3600}, headers=headers) for _ in range(2)),
    )
    assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
    in_use = []
    for answer in answers:
        me = await client.get("/v1/api-clients/me", headers=bearer(answer.json()["api_key"]))
        in_use.append(me.json()["key_in_use"] if me.status_code == 200 else f"refused {me.status_code}")
    assert sorted(in_use) == ["current", "previous"]
    assert len(await audit_rows(owner_engine, "api_client.rotated")) == 2


async def test_a_client_suspended_twice_at_once_is_suspended_once(client, admin, owner_engine):
    from tests.support.held_rows import while_held

    account, headers = admin
    created = await create_client(client, headers, account.unit_id)
    answers = await while_held(
        owner_engine,
        "SELECT 1 FROM api_clients WHERE id = :id FOR UPDATE",
        {"id": created["id"]},
        *(client.post(f"/v1/api-clients/{created['id']}/suspend", headers=headers) for _ in range(2)),
    )
    assert sorted(answer.status_code for answer in answers) == [200, 409], [a.text for a in answers]
    assert len(await audit_rows(owner_engine, "api_client.suspended")) == 1
