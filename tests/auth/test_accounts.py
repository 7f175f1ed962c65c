"""Units and accounts: subtree scoping, role ceilings, encrypted personal data, audit (D-20, D-21)."""

import asyncio
import uuid

from sqlalchemy import text

from auth.roles import Role
from tests.support.factories import make_account, make_unit, sign_in

STRONG = "seven purple kites over hanoi"


def new_user(unit_id, role="editor", **extra):
    return {
        "username": f"u{uuid.uuid4().hex[:10]}",
        "full_name": "Trần Thị Bình",
        "unit_id": str(unit_id),
        "role": role,
        "password": STRONG,
        **extra,
    }


async def test_unit_admin_creates_accounts_only_inside_its_subtree(client):
    root = await make_unit()
    province = await make_unit(parent=root)
    commune = await make_unit(parent=province)
    sibling = await make_unit(parent=root)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=province)
    headers = await sign_in(client, admin)

    inside = await client.post("/v1/users", headers=headers, json=new_user(commune.id))
    assert inside.status_code == 201, inside.text
    for unit in (root, sibling):
        outside = await client.post("/v1/users", headers=headers, json=new_user(unit.id))
        assert outside.status_code == 404, outside.text


async def test_unit_admin_cannot_read_or_change_accounts_outside_its_subtree(client):
    root = await make_unit()
    province = await make_unit(parent=root)
    sibling = await make_unit(parent=root)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=province)
    stranger = await make_account(role=Role.EDITOR, unit=sibling)
    boss = await make_account(role=Role.EDITOR, unit=root)
    headers = await sign_in(client, admin)
    for target in (stranger, boss):
        assert (await client.get(f"/v1/users/{target.id}", headers=headers)).status_code == 404
        assert (
            await client.patch(f"/v1/users/{target.id}", headers=headers, json={"full_name": "X"})
        ).status_code == 404
        assert (await client.post(f"/v1/users/{target.id}/disable", headers=headers)).status_code == 404
        assert (await client.post(f"/v1/users/{target.id}/unlock", headers=headers)).status_code == 404
        assert (await client.get(f"/v1/users/{target.id}/sessions", headers=headers)).status_code == 404
    listed = (await client.get("/v1/users", headers=headers)).json()["items"]
    assert {u["id"] for u in listed} == {str(admin.id)}
    assert (await client.get(f"/v1/units/{sibling.id}", headers=headers)).status_code == 404


async def test_admins_never_grant_a_role_above_their_own(client):
    root = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    above = await client.post("/v1/users", headers=headers, json=new_user(root.id, role="system_admin"))
    assert above.status_code == 403 and above.json()["error"]["code"] == "role_above_own"
    equal = await client.post("/v1/users", headers=headers, json=new_user(root.id, role="unit_admin"))
    assert equal.status_code == 201, equal.text
    editor = await make_account(role=Role.EDITOR, unit=root)
    promote = await client.patch(f"/v1/users/{editor.id}", headers=headers, json={"role": "system_admin"})
    assert promote.status_code == 403


async def test_mass_assignment_is_rejected(client):
    root = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
    editor = await make_account(role=Role.EDITOR, unit=root)
    headers = await sign_in(client, admin)
    for field, value in {"is_active": False, "token_version": 9, "password_hash": "x", "status": "x"}.items():
        response = await client.patch(f"/v1/users/{editor.id}", headers=headers, json={field: value})
        assert response.status_code == 422, field
    own = await sign_in(client, editor)
    sneaky = await client.post(
        "/v1/auth/password",
        headers=own,
        json={"current_password": editor.password, "new_password": STRONG, "role": "system_admin"},
    )
    assert sneaky.status_code == 422


async def test_phone_and_citizen_id_are_encrypted_at_rest(client, owner_engine):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    created = await client.post(
        "/v1/users",
        headers=headers,
        json=new_user(
            root.id,
            phone="+84 912 345 678",
            citizen_id="001203004567",
            email="binh@example.vn",
            position="Chuyên viên",
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "+84912345678" and body["citizen_id"] == "001203004567"
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT phone_enc, citizen_id_enc FROM users WHERE id = :id"), {"id": body["id"]}
            )
        ).one()
        dump = (await conn.execute(text("SELECT string_agg(details::text, ' ') FROM audit_log"))).scalar_one()
    assert b"912345678" not in row.phone_enc and b"001203004567" not in row.citizen_id_enc
    assert "912345678" not in dump and "001203004567" not in dump
    assert (await client.get(f"/v1/users/{body['id']}", headers=headers)).json()[
        "citizen_id"
    ] == "001203004567"


async def test_every_account_mutation_writes_an_audit_row(client, owner_engine):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    unit = (
        await client.post(
            "/v1/units",
            headers=headers,
            json={"parent_id": str(root.id), "code": "HN", "name": "Hà Nội", "kind": "province"},
        )
    ).json()
    user = (await client.post("/v1/users", headers=headers, json=new_user(unit["id"]))).json()
    await client.patch(f"/v1/users/{user['id']}", headers=headers, json={"position": "Phó phòng"})
    await client.post(f"/v1/users/{user['id']}/disable", headers=headers)
    await client.post(f"/v1/users/{user['id']}/enable", headers=headers)
    await client.post(f"/v1/users/{user['id']}/unlock", headers=headers)
    await client.patch(f"/v1/units/{unit['id']}", headers=headers, json={"name": "Thành phố Hà Nội"})
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT action, actor_id, outcome FROM audit_log ORDER BY seq"))
        ).all()
    actions = [r.action for r in rows]
    for expected in (
        "auth.login",
        "mfa.verified",
        "unit.created",
        "user.created",
        "user.updated",
        "user.disabled",
        "user.enabled",
        "user.unlocked",
        "unit.renamed",
    ):
        assert expected in actions, expected
    assert all(str(r.actor_id) == str(admin.id) for r in rows if r.action.startswith(("user.", "unit.")))


async def test_permission_denied_is_audited(client, owner_engine):
    root = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=root)
    headers = await sign_in(client, editor)
    assert (await client.get("/v1/users", headers=headers)).status_code == 403
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT actor_id, outcome, object_id FROM audit_log WHERE action='permission.denied'")
            )
        ).one()
    assert (
        str(row.actor_id) == str(editor.id) and row.outcome == "denied" and row.object_id == "GET /v1/users"
    )


async def test_duplicate_username_is_a_conflict_not_a_500(client):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    body = new_user(root.id)
    assert (await client.post("/v1/users", headers=headers, json=body)).status_code == 201
    again = await client.post("/v1/users", headers=headers, json=body)
    assert again.status_code == 409 and again.json()["error"]["code"] == "username_taken"


async def test_a_unit_admin_cannot_change_an_account_ranked_above_its_own(client, owner_engine):
    # Only a role change was checked against the admin's rank: a unit admin could move a system
    # admin of its subtree to another unit (ending every session of theirs) or rewrite their
    # e-mail and phone (the SMS fallback's number), although it may not disable them.
    root = await make_unit()
    branch = await make_unit(parent=root)
    admin = await make_account(role=Role.UNIT_ADMIN, unit=root)
    system_admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    for change in ({"unit_id": str(branch.id)}, {"phone": "+84901234567"}, {"full_name": "Người khác"}):
        refused = await client.patch(f"/v1/users/{system_admin.id}", headers=headers, json=change)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "role_above_own"
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT unit_id, phone_enc, full_name FROM users WHERE id = :id"),
                {"id": system_admin.id},
            )
        ).one()
    assert (row.unit_id, row.phone_enc) == (root.id, None)
    assert row.full_name != "Người khác"
    # A peer or anyone below stays the admin's to edit.
    member = await make_account(role=Role.MEMBER, unit=root)
    allowed = await client.patch(f"/v1/users/{member.id}", headers=headers, json={"unit_id": str(branch.id)})
    assert allowed.status_code == 200, allowed.text


async def test_a_second_disable_changes_nothing_and_writes_no_audit_row(client, owner_engine):
    # It moved ``disabled_at`` (when access ended, D-23) to the second request's time and wrote
    # a second "user.disabled"; two at once did the same.
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    user = (await client.post("/v1/users", headers=headers, json=new_user(root.id))).json()

    async def disabled() -> tuple[int, object]:
        async with owner_engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT count(*) FROM audit_log WHERE action = 'user.disabled' AND object_id = :id"),
                    {"id": user["id"]},
                )
            ).scalar()
            at = (
                await conn.execute(text("SELECT disabled_at FROM users WHERE id = :id"), {"id": user["id"]})
            ).scalar()
        return rows, at

    first = await client.post(f"/v1/users/{user['id']}/disable", headers=headers)
    assert first.status_code == 200, first.text
    rows, at = await disabled()
    assert rows == 1 and at is not None
    replies = await asyncio.gather(
        *(client.post(f"/v1/users/{user['id']}/disable", headers=headers) for _ in range(3))
    )
    assert [reply.status_code for reply in replies] == [200, 200, 200]
    assert {reply.json()["is_active"] for reply in replies} == {False}
    assert await disabled() == (1, at)


async def test_a_user_search_treats_percent_and_underscore_as_themselves(client):
    root = await make_unit()
    admin = await make_account(role=Role.SYSTEM_ADMIN, unit=root)
    headers = await sign_in(client, admin)
    tag = f"zq{uuid.uuid4().hex[:6]}"
    for name in (f"Nguyễn {tag} An", f"Lê 100% {tag}"):
        created = await client.post("/v1/users", headers=headers, json=new_user(root.id, full_name=name))
        assert created.status_code == 201, created.text
    for needle, expected in (
        ("%", [f"Lê 100% {tag}"]),
        ("_", []),
        (tag, [f"Lê 100% {tag}", f"Nguyễn {tag} An"]),
    ):
        found = await client.get("/v1/users", headers=headers, params={"q": needle, "unit_id": str(root.id)})
        assert found.status_code == 200, found.text
        assert sorted(u["full_name"] for u in found.json()["items"]) == expected, needle
