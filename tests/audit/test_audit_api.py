"""GET /v1/audit and /v1/audit/verify: filters, keyset pages, unit scope, and reads on record."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text

from auth.roles import Role
from core import clock
from tests.audit.helpers import make_tree, tamper, write_rows
from tests.support.factories import make_account, sign_in


async def fetch_all(client, headers, **params) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/audit", headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def tags(items: list[dict[str, Any]]) -> set[str]:
    return {item["details"].get("tag") for item in items}


async def test_pages_never_skip_or_repeat_even_while_rows_are_appended(client):
    tree = await make_tree()
    headers = await sign_in(client, tree.system_admin)
    await write_rows(57, action="test.page")
    first = (
        await client.get("/v1/audit", headers=headers, params={"action": "test.page", "limit": 10})
    ).json()
    seen = [item["seq"] for item in first["items"]]
    cursor = first["next_cursor"]
    await write_rows(5, action="test.page")  # newer rows land above the cursor
    while cursor:
        page = (
            await client.get(
                "/v1/audit", headers=headers, params={"action": "test.page", "limit": 10, "cursor": cursor}
            )
        ).json()
        assert len(page["items"]) <= 10
        seen.extend(item["seq"] for item in page["items"])
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 57
    assert seen == sorted(seen, reverse=True)
    everything = await fetch_all(client, headers, action="test.page", limit=500)
    assert len(everything) == 62 and set(seen) < {item["seq"] for item in everything}


async def test_filters_select_exactly_the_matching_rows(client):
    tree = await make_tree()
    actor, leader = uuid.uuid4(), uuid.uuid4()
    early = clock.utcnow()
    await write_rows(1, action="user.created", actor_id=actor, details={"tag": "created"}, unit_id=tree.a.id)
    await write_rows(
        1, action="user.disabled", actor_id=actor, on_behalf_of_id=leader, details={"tag": "disabled"}
    )
    clock.advance(3600)
    middle = clock.utcnow()
    await write_rows(
        1,
        action="unit.renamed",
        object_type="unit",
        object_id="u-17",
        details={"tag": "renamed"},
        unit_id=tree.b.id,
    )
    await write_rows(1, action="test.other", outcome="failure", details={"tag": "failed"})
    clock.advance(3600)
    await write_rows(1, action="test.other", details={"tag": "late"})
    headers = await sign_in(client, tree.system_admin)  # after the clock moved, so the token is fresh

    async def matching(**params) -> set[str]:
        return tags(await fetch_all(client, headers, **params)) - {None}

    assert await matching(actor_id=str(actor)) == {"created", "disabled"}
    assert await matching(on_behalf_of_id=str(leader)) == {"disabled"}
    assert await matching(unit_id=str(tree.b.id)) == {"renamed"}
    assert await matching(action="user.created") == {"created"}
    assert await matching(action="user.") == {"created", "disabled"}
    assert await matching(action="user.*") == {"created", "disabled"}
    assert await matching(action="user") == set()  # exact, not a prefix
    assert await matching(object_type="unit", object_id="u-17") == {"renamed"}
    assert await matching(outcome="failure") == {"failed"}
    window = {"since": middle.isoformat(), "until": (middle + dt.timedelta(minutes=30)).isoformat()}
    assert await matching(**window) == {"renamed", "failed"}
    assert await matching(since=early.isoformat(), until=middle.isoformat()) >= {"created", "disabled"}
    assert "late" not in await matching(until=middle.isoformat())


async def test_unit_admin_sees_only_its_own_subtree(client):
    tree = await make_tree()
    for tag, unit in (("a", tree.a), ("a_child", tree.a_child), ("b", tree.b), ("root", tree.root)):
        await write_rows(2, action="test.scope", unit_id=unit.id, details={"tag": tag})
    await write_rows(1, action="test.scope", details={"tag": "no unit"})
    admin_a = await sign_in(client, tree.admin_a)
    admin_b = await sign_in(client, tree.admin_b)
    system = await sign_in(client, tree.system_admin)
    assert tags(await fetch_all(client, admin_a, action="test.scope")) == {"a", "a_child"}
    assert tags(await fetch_all(client, admin_b, action="test.scope")) == {"b"}
    assert await fetch_all(client, admin_a, unit_id=str(tree.b.id)) == []  # a filter cannot widen the scope
    assert tags(await fetch_all(client, system, action="test.scope")) == {
        "a",
        "a_child",
        "b",
        "root",
        "no unit",
    }
    # Their own sign-ins are in their unit, so they do see those.
    own = await fetch_all(client, admin_a, action="auth.login")
    assert own and {item["actor_id"] for item in own} == {str(tree.admin_a.id)}


async def test_reading_the_log_is_itself_audited(client, owner_engine):
    tree = await make_tree()
    headers = await sign_in(client, tree.admin_a)
    response = await client.get("/v1/audit", headers=headers, params={"action": "auth.", "limit": 5})
    assert response.status_code == 200
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT actor_id, unit_id, details FROM audit_log WHERE action = 'audit.read'")
            )
        ).one()
    assert (row.actor_id, row.unit_id) == (tree.admin_a.id, tree.a.id)
    assert row.details["filters"] == {"action": "auth."} and row.details["rows"] >= 1


async def test_only_admins_read_the_log_and_bad_input_is_rejected(client):
    tree = await make_tree()
    member = await make_account(role=Role.MEMBER, unit=tree.a)
    response = await client.get("/v1/audit", headers=await sign_in(client, member))
    assert response.status_code == 403
    headers = await sign_in(client, tree.system_admin)
    assert (await client.get("/v1/audit", headers=headers, params={"cursor": "bm9wZQ"})).json()["error"][
        "code"
    ] == ("invalid_cursor")
    for params in ({"since": "2026-01-01T00:00:00"}, {"limit": 501}, {"limit": 0}, {"actor_id": "x"}):
        assert (await client.get("/v1/audit", headers=headers, params=params)).status_code == 422, params


async def test_verify_endpoint_is_for_system_admins_and_names_the_break(client, owner_engine):
    tree = await make_tree()
    await write_rows(6)
    admin_a = await sign_in(client, tree.admin_a)
    denied = await client.get("/v1/audit/verify", headers=admin_a)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "system_admin_only"
    system = await sign_in(client, tree.system_admin)
    body = (await client.get("/v1/audit/verify", headers=system)).json()
    assert body["ok"] is True and body["first_broken_seq"] is None and body["head_seq"] >= 6
    await tamper(owner_engine, "UPDATE audit_log SET actor_kind = 'user' WHERE seq = 4")
    body = (await client.get("/v1/audit/verify", headers=system)).json()
    assert (body["ok"], body["first_broken_seq"], body["reason"]) == (False, 4, "hash_mismatch")
    async with owner_engine.connect() as conn:
        recorded = (
            await conn.execute(
                text(
                    "SELECT action, outcome FROM audit_log"
                    " WHERE action IN ('audit.verified', 'permission.denied')"
                )
            )
        ).all()
    assert sorted(map(tuple, recorded)) == [
        ("audit.verified", "failure"),
        ("audit.verified", "success"),
        ("permission.denied", "denied"),
    ]
