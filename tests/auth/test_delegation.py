"""Delegation (D-24): scope ∩ the leader's current rights; audit names both people."""

import datetime as dt

from sqlalchemy import text

from auth.roles import Role
from core import clock
from tests.support.factories import make_account, make_unit, sign_in


async def _grant(client, leader_headers, delegate, permissions, days=7):
    expires = (clock.utcnow() + dt.timedelta(days=days)).isoformat()
    response = await client.post(
        "/v1/delegations",
        headers=leader_headers,
        json={"delegate_id": str(delegate.id), "permissions": permissions, "expires_at": expires},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_delegate_acts_within_scope_and_is_audited_as_the_leader(client, owner_engine):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit, enrolled=True)
    delegation = await _grant(client, await sign_in(client, leader), assistant, ["units:read"])
    headers = {**await sign_in(client, assistant), "X-On-Behalf-Of": delegation["id"]}

    me = (await client.get("/v1/auth/me", headers=headers)).json()
    assert me["acting_as"] == str(leader.id) and me["permissions"] == ["units:read"]
    assert (await client.get("/v1/units", headers=headers)).status_code == 200
    # Outside the scope, even though the leader holds it.
    assert (await client.get("/v1/users", headers=headers)).status_code == 403
    async with owner_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT actor_id, on_behalf_of_id FROM audit_log"
                    " WHERE action='permission.denied' ORDER BY seq DESC LIMIT 1"
                )
            )
        ).one()
    assert (str(row.actor_id), str(row.on_behalf_of_id)) == (str(assistant.id), str(leader.id))


async def test_delegate_cannot_redelegate_or_change_mfa(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    other = await make_account(role=Role.MEMBER, unit=unit)
    leader_headers = await sign_in(client, leader)
    refused = await client.post(
        "/v1/delegations",
        headers=leader_headers,
        json={
            "delegate_id": str(assistant.id),
            "permissions": ["delegations:grant"],
            "expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat(),
        },
    )
    assert refused.status_code == 403
    delegation = await _grant(client, leader_headers, assistant, ["units:read", "tasks:read"])
    headers = {**await sign_in(client, assistant), "X-On-Behalf-Of": delegation["id"]}
    again = await client.post(
        "/v1/delegations",
        headers=headers,
        json={
            "delegate_id": str(other.id),
            "permissions": ["units:read"],
            "expires_at": (clock.utcnow() + dt.timedelta(days=1)).isoformat(),
        },
    )
    assert again.status_code == 403
    assert (await client.post("/v1/auth/mfa/recovery-codes", headers=headers)).status_code == 403
    assert (
        await client.post(
            "/v1/auth/password", headers=headers, json={"current_password": "x", "new_password": "y"}
        )
    ).status_code == 403


async def test_leader_losing_rights_or_revoking_ends_the_delegation_at_once(client):
    unit = await make_unit()
    admin = await make_account(role=Role.UNIT_ADMIN, unit=unit)
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    delegation = await _grant(client, await sign_in(client, leader), assistant, ["units:read", "tasks:read"])
    headers = {**await sign_in(client, assistant), "X-On-Behalf-Of": delegation["id"]}
    assert (await client.get("/v1/units", headers=headers)).status_code == 200
    # The leader becomes a plain reader: the intersection is now empty.
    admin_headers = await sign_in(client, admin)
    assert (
        await client.patch(f"/v1/users/{leader.id}", headers=admin_headers, json={"role": "member"})
    ).status_code == 200
    assert (await client.get("/v1/units", headers=headers)).status_code == 403
    # Disabled leader: the delegation stops being usable at all.
    await client.post(f"/v1/users/{leader.id}/disable", headers=admin_headers)
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 403


async def test_expired_and_revoked_delegations_are_refused(client):
    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    leader_headers = await sign_in(client, leader)
    short = await _grant(client, leader_headers, assistant, ["units:read"], days=1)
    revoked = await _grant(client, leader_headers, assistant, ["units:read"], days=30)
    assert (
        await client.delete(f"/v1/delegations/{revoked['id']}", headers=leader_headers)
    ).status_code == 200
    own = await sign_in(client, assistant)
    assert (
        await client.get("/v1/units", headers={**own, "X-On-Behalf-Of": revoked["id"]})
    ).status_code == 403
    clock.advance(2 * 86400)
    own = await sign_in(client, assistant)
    assert (await client.get("/v1/units", headers={**own, "X-On-Behalf-Of": short["id"]})).status_code == 403
    # Someone else's delegation id, or garbage, is refused too.
    stranger = await make_account(role=Role.MEMBER, unit=unit)
    theirs = await sign_in(client, stranger)
    assert (
        await client.get("/v1/auth/me", headers={**theirs, "X-On-Behalf-Of": short["id"]})
    ).status_code == 403
    assert (await client.get("/v1/auth/me", headers={**theirs, "X-On-Behalf-Of": "nope"})).status_code == 403


async def test_a_delegation_revoked_twice_at_once_is_revoked_once(client, owner_engine):
    # Both sides revoking at the same moment each saw it live: two audit rows, and the first
    # revoker overwritten by the second.
    from tests.support.held_rows import while_held

    unit = await make_unit()
    leader = await make_account(role=Role.LEADER, unit=unit)
    assistant = await make_account(role=Role.MEMBER, unit=unit)
    leader_headers = await sign_in(client, leader)
    delegation = await _grant(client, leader_headers, assistant, ["units:read"])
    assistant_headers = await sign_in(client, assistant)
    answers = await while_held(
        owner_engine,
        "SELECT 1 FROM delegations WHERE id = :id FOR UPDATE",
        {"id": delegation["id"]},
        client.delete(f"/v1/delegations/{delegation['id']}", headers=leader_headers),
        client.delete(f"/v1/delegations/{delegation['id']}", headers=assistant_headers),
    )
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].json()["revoked_at"] == answers[1].json()["revoked_at"]
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'delegation.revoked'"))
        ).scalar_one()
    assert rows == 1
