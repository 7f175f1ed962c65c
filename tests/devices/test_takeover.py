"""A push token is no proof of holding the device (issue 12, item 6).

Re-registering a known token continues its device only for the device itself (its current
credential) or its signed-in account; anyone else gets a new device, and nothing of the
previous one — credential, own inbox items, account link — reaches them."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from auth.roles import Role
from core.db import transaction
from devices import service as devices
from tests.api_clients.helpers import client_from
from tests.inbox.helpers import insert_notification
from tests.support.factories import make_account, make_unit, sign_in

ATTACKER_IP = "198.51.100.66"


def portal(token: str, **extra: object) -> dict[str, object]:
    return {"app": "portal", "platform": "android", "token": token, **extra}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def _inbox_ids(client, headers) -> list[str]:
    response = await client.get("/v1/inbox", headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def _actions(owner_engine, action: str) -> list[dict]:
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT object_id, details FROM audit_log WHERE action = :a ORDER BY seq"), {"a": action}
        )
        return [{"object_id": r.object_id, "details": r.details} for r in rows]


async def test_anonymous_reregistration_of_a_known_token_gets_nothing_of_the_device(
    app, client, owner_engine
):
    token = f"fcm-{uuid.uuid4().hex}"
    phone = (await client.post("/v1/devices", json=portal(token))).json()
    private = await insert_notification(audience={"devices": [phone["id"]]}, readers=[uuid.UUID(phone["id"])])
    assert str(private) in await _inbox_ids(client, bearer(phone["device_credential"]))

    async with client_from(app, ATTACKER_IP) as attacker:
        taken = await attacker.post("/v1/devices", json=portal(token, topics=["x"]))
        assert taken.status_code == 201, taken.text
        stolen = taken.json()
        assert stolen["id"] != phone["id"]
        assert stolen["device_credential"] != phone["device_credential"]
        # The new credential reads the new device's inbox, which has none of the phone's items.
        assert str(private) not in await _inbox_ids(attacker, bearer(stolen["device_credential"]))
        item = await attacker.get(f"/v1/inbox/{private}", headers=bearer(stolen["device_credential"]))
        assert item.status_code == 404

    # The previous device is retired (one live device per token) and its credential is dead.
    async with owner_engine.connect() as conn:
        old = (
            await conn.execute(
                text("SELECT token, invalid_reason, credential_hash FROM devices WHERE id = :id"),
                {"id": phone["id"]},
            )
        ).one()
    assert old.token != token and old.invalid_reason == "superseded" and old.credential_hash is None
    assert (await client.get("/v1/devices", headers=bearer(phone["device_credential"]))).status_code == 401


async def test_anonymous_reregistration_of_a_signed_in_device_is_refused_and_keeps_the_link(
    app, client, owner_engine
):
    owner = await make_account(role=Role.MEMBER, unit=await make_unit())
    owner_headers = await sign_in(client, owner)
    token = f"fcm-{uuid.uuid4().hex}"
    linked = (await client.post("/v1/devices", json=portal(token), headers=owner_headers)).json()

    async with client_from(app, ATTACKER_IP) as attacker:
        taken = await attacker.post("/v1/devices", json=portal(token))
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["code"] == "device_signed_in"
    assert "device_credential" not in taken.text

    # The account keeps its phone: nothing was unlinked, silently or otherwise.
    assert [d["id"] for d in (await client.get("/v1/devices", headers=owner_headers)).json()] == [
        linked["id"]
    ]
    assert await _actions(owner_engine, "device.superseded") == []
    # The phone's own app, signed in again (a reinstall), continues the same device.
    again = await client.post("/v1/devices", json=portal(token), headers=owner_headers)
    assert again.status_code == 200 and again.json()["id"] == linked["id"]


async def test_reregistration_with_the_current_credential_keeps_device_and_credential(client):
    token = f"fcm-{uuid.uuid4().hex}"
    phone = (await client.post("/v1/devices", json=portal(token))).json()
    again = await client.post(
        "/v1/devices", json=portal(token, locale="en"), headers=bearer(phone["device_credential"])
    )
    assert again.status_code == 200
    assert again.json()["id"] == phone["id"] and again.json()["device_credential"] is None
    assert (await client.get("/v1/devices", headers=bearer(phone["device_credential"]))).status_code == 200

    # Another device's credential proves nothing about this token's device.
    other = (await client.post("/v1/devices", json=portal(f"fcm-{uuid.uuid4().hex}"))).json()
    crossed = await client.post("/v1/devices", json=portal(token), headers=bearer(other["device_credential"]))
    assert crossed.status_code == 201 and crossed.json()["id"] not in (phone["id"], other["id"])
    assert (await client.get("/v1/devices", headers=bearer(phone["device_credential"]))).status_code == 401


async def test_signed_in_owner_reregistering_keeps_the_device(client, owner_engine):
    owner = await make_account(role=Role.MEMBER, unit=await make_unit())
    headers = await sign_in(client, owner)
    token = f"fcm-{uuid.uuid4().hex}"
    first = (await client.post("/v1/devices", json=portal(token), headers=headers)).json()
    again = await client.post("/v1/devices", json=portal(token, locale="fr"), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert await _actions(owner_engine, "device.superseded") == []


async def test_signed_in_other_user_gets_a_new_device_without_the_previous_inboxes(client, owner_engine):
    unit = await make_unit()
    first, second = [await make_account(role=Role.MEMBER, unit=unit) for _ in range(2)]
    first_headers, second_headers = await sign_in(client, first), await sign_in(client, second)
    token = f"fcm-{uuid.uuid4().hex}"
    handed = (await client.post("/v1/devices", json=portal(token), headers=first_headers)).json()
    first_private = await insert_notification(audience={"users": [str(first.id)]}, readers=[first.id])

    taken = await client.post("/v1/devices", json=portal(token), headers=second_headers)
    assert taken.status_code == 201 and taken.json()["id"] != handed["id"]
    assert str(first_private) not in await _inbox_ids(client, second_headers)
    assert str(first_private) in await _inbox_ids(client, first_headers)  # it stays with the account
    assert (await client.get("/v1/devices", headers=first_headers)).json() == []
    assert [d["id"] for d in (await client.get("/v1/devices", headers=second_headers)).json()] == [
        taken.json()["id"]
    ]
    assert (await _actions(owner_engine, "device.superseded"))[-1]["details"] == {
        "from_user": str(first.id),
        "to_user": str(second.id),
    }

    # An anonymous phone on which someone signs in: a new device of the account; the anonymous
    # device's own items stay behind, and its credential ends.
    anonymous_token = f"fcm-{uuid.uuid4().hex}"
    anonymous = (await client.post("/v1/devices", json=portal(anonymous_token))).json()
    device_private = await insert_notification(
        audience={"devices": [anonymous["id"]]}, readers=[uuid.UUID(anonymous["id"])]
    )
    signed = await client.post("/v1/devices", json=portal(anonymous_token), headers=second_headers)
    assert signed.status_code == 201 and signed.json()["id"] != anonymous["id"]
    assert str(device_private) not in await _inbox_ids(client, second_headers)
    assert (
        await client.get("/v1/devices", headers=bearer(anonymous["device_credential"]))
    ).status_code == 401


async def test_reinstalled_app_recovers_with_the_same_or_a_new_token(client, owner_engine):
    token = f"fcm-{uuid.uuid4().hex}"
    before = (await client.post("/v1/devices", json=portal(token))).json()
    # Reinstalled: the credential is gone, the token is the same (iOS, sometimes).
    after = await client.post("/v1/devices", json=portal(token))
    assert after.status_code == 201
    credential = bearer(after.json()["device_credential"])
    assert (await client.get("/v1/inbox", headers=credential)).status_code == 200
    # Reinstalled with a new token (the usual case): simply a new device.
    fresh = await client.post("/v1/devices", json=portal(f"fcm-{uuid.uuid4().hex}"))
    assert fresh.status_code == 201
    async with owner_engine.connect() as conn:
        live = (
            (
                await conn.execute(
                    text("SELECT id::text FROM devices WHERE token = :t AND invalidated_at IS NULL"),
                    {"t": token},
                )
            )
            .scalars()
            .all()
        )
    assert live == [after.json()["id"]] and before["id"] not in live


async def test_a_retired_device_is_not_revived_for_whoever_registers_its_token(client):
    """The provider retired it (or its owner did): its token registered again is a new device,
    not the old one with the old device's items behind a fresh credential."""
    token = f"fcm-{uuid.uuid4().hex}"
    phone = (await client.post("/v1/devices", json=portal(token))).json()
    private = await insert_notification(audience={"devices": [phone["id"]]}, readers=[uuid.UUID(phone["id"])])
    async with transaction() as session:
        await devices.invalidate(session, device_ids=[uuid.UUID(phone["id"])], reason="UNREGISTERED")
    again = (await client.post("/v1/devices", json=portal(token))).json()
    assert again["id"] != phone["id"]
    assert str(private) not in await _inbox_ids(client, bearer(again["device_credential"]))


async def test_signing_out_unregisters_then_registers_anonymously(client):
    """The sign-out flow of docs/delivery.md: the app ends its own link first (proven by its
    session), then the token registers anonymously as a new device."""
    owner = await make_account(role=Role.MEMBER, unit=await make_unit())
    owner_headers = await sign_in(client, owner)
    token = f"fcm-{uuid.uuid4().hex}"
    linked = (await client.post("/v1/devices", json=portal(token), headers=owner_headers)).json()
    assert (await client.delete(f"/v1/devices/{linked['id']}", headers=owner_headers)).status_code == 204
    anonymous = await client.post("/v1/devices", json=portal(token))
    assert anonymous.status_code == 201, anonymous.text
    assert anonymous.json()["id"] != linked["id"] and anonymous.json()["device_credential"]
    assert (await client.get("/v1/devices", headers=owner_headers)).json() == []
