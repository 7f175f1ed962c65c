"""Device registry: idempotent upsert, anonymous credentials, handover, limits, invalidation."""

import asyncio
import datetime as dt
import uuid

from sqlalchemy import text

from auth.roles import Role
from core.config import get_settings
from core.db import transaction
from devices import service as devices
from tests.support.factories import make_account, make_unit, sign_in


def android(token=None, **extra):
    return {"app": "portal", "platform": "android", "token": token or f"fcm-{uuid.uuid4().hex}", **extra}


async def test_anonymous_portal_device_gets_a_credential_and_refresh_is_idempotent(client, owner_engine):
    body = android(locale="en-GB", topics=["van-kien", "van-kien"], app_version="2.3.1")
    first = await client.post("/v1/devices", json=body)
    assert first.status_code == 201, first.text
    device = first.json()
    assert device["provider"] == "fcm" and device["locale"] == "en" and device["topics"] == ["van-kien"]
    credential = device["device_credential"]
    assert credential.startswith("chd_")
    # Refresh with the credential: same device, no new credential.
    again = await client.post(
        "/v1/devices", json={**body, "locale": "ru"}, headers={"Authorization": f"Bearer {credential}"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == device["id"] and again.json()["device_credential"] is None
    assert again.json()["locale"] == "ru"
    listed = await client.get("/v1/devices", headers={"Authorization": f"Bearer {credential}"})
    assert [d["id"] for d in listed.json()] == [device["id"]]
    async with owner_engine.connect() as conn:
        stored = (await conn.execute(text("SELECT credential_hash FROM devices"))).scalar_one()
    assert credential not in stored


async def test_unsupported_locale_falls_back_to_vietnamese_and_ios_defaults_to_apns(client):
    response = await client.post(
        "/v1/devices", json={"app": "portal", "platform": "ios", "token": "a" * 64, "locale": "de-DE"}
    )
    assert response.status_code == 201
    assert response.json()["locale"] == "vi"
    assert response.json()["provider"] == "apns" and response.json()["apns_environment"] == "production"


async def test_tracking_devices_need_an_account(client):
    response = await client.post("/v1/devices", json={**android(), "app": "tracking"})
    assert response.status_code == 401


async def test_token_handed_to_another_user_becomes_their_new_device(client, owner_engine):
    unit = await make_unit()
    first_owner = await make_account(role=Role.TASK_OFFICER, unit=unit)
    second_owner = await make_account(role=Role.TASK_OFFICER, unit=unit)
    body = {**android(), "app": "tracking"}
    a = await client.post("/v1/devices", json=body, headers=await sign_in(client, first_owner))
    b = await client.post("/v1/devices", json=body, headers=await sign_in(client, second_owner))
    # A new device for the new account; the previous owner's device is retired (docs/delivery.md).
    assert a.json()["id"] != b.json()["id"] and b.status_code == 201
    assert (await client.get("/v1/devices", headers=await sign_in(client, first_owner))).json() == []
    assert len((await client.get("/v1/devices", headers=await sign_in(client, second_owner))).json()) == 1
    async with owner_engine.connect() as conn:
        actions = (
            (await conn.execute(text("SELECT action FROM audit_log WHERE object_type='device'")))
            .scalars()
            .all()
        )
    assert "device.superseded" in actions


async def test_concurrent_registrations_of_one_token_leave_one_live_device(client, owner_engine):
    body = android()
    responses = await asyncio.gather(*(client.post("/v1/devices", json=body) for _ in range(5)))
    assert all(r.status_code in (200, 201) for r in responses)
    # Each unproven registration is a new device (the token proves nothing); one holds the token.
    async with owner_engine.connect() as conn:
        live = (
            await conn.execute(text("SELECT id::text, token FROM devices WHERE invalidated_at IS NULL"))
        ).all()
    assert len(live) == 1 and live[0].token == body["token"]
    assert live[0].id in {r.json()["id"] for r in responses}


async def test_per_user_limit_retires_the_least_recently_seen(client, monkeypatch):
    monkeypatch.setattr(get_settings(), "device_limit_per_user", 2)
    unit = await make_unit()
    member = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    headers = await sign_in(client, member)
    ids = []
    for _ in range(3):
        ids.append((await client.post("/v1/devices", json=android(), headers=headers)).json()["id"])
    listed = {d["id"] for d in (await client.get("/v1/devices", headers=headers)).json()}
    assert listed == {ids[1], ids[2]}


async def test_unregister_only_by_owner(client):
    unit = await make_unit()
    owner = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    stranger = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    device = (await client.post("/v1/devices", json=android(), headers=await sign_in(client, owner))).json()
    assert (
        await client.delete(f"/v1/devices/{device['id']}", headers=await sign_in(client, stranger))
    ).status_code == 404
    assert (
        await client.delete(f"/v1/devices/{device['id']}", headers=await sign_in(client, owner))
    ).status_code == 204
    assert (await client.get("/v1/devices", headers=await sign_in(client, owner))).json() == []
    anonymous = (await client.post("/v1/devices", json=android())).json()
    credential = {"Authorization": f"Bearer {anonymous['device_credential']}"}
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=credential)).status_code == 404
    assert (await client.delete(f"/v1/devices/{anonymous['id']}", headers=credential)).status_code == 204
    # The credential died with the device.
    assert (await client.get("/v1/devices", headers=credential)).status_code == 401


async def test_device_credentials_reach_only_device_routes(client):
    anonymous = (await client.post("/v1/devices", json=android())).json()
    credential = {"Authorization": f"Bearer {anonymous['device_credential']}"}
    assert (await client.get("/v1/auth/sessions", headers=credential)).status_code == 403
    assert (await client.get("/v1/units", headers=credential)).status_code == 403
    forged = {"Authorization": f"Bearer chd_{uuid.UUID(anonymous['id']).hex}_forged"}
    assert (await client.get("/v1/devices", headers=forged)).status_code == 401


async def test_provider_invalidation_excludes_and_purge_removes_stale_devices(client, owner_engine):
    live = (await client.post("/v1/devices", json=android())).json()
    dead = (await client.post("/v1/devices", json=android())).json()
    stale = (await client.post("/v1/devices", json=android())).json()
    async with transaction() as session:
        assert (
            await devices.invalidate(session, device_ids=[uuid.UUID(dead["id"])], reason="UNREGISTERED") == 1
        )
    async with owner_engine.begin() as conn:
        await conn.execute(
            text("UPDATE devices SET last_seen_at = now() - interval '271 days' WHERE id = :id"),
            {"id": stale["id"]},
        )
        await conn.execute(
            text("UPDATE devices SET invalidated_at = now() - interval '31 days' WHERE id = :id"),
            {"id": dead["id"]},
        )
    async with transaction() as session:
        assert await devices.purge_stale(session, now=dt.datetime.now(dt.UTC)) == 2
    async with owner_engine.connect() as conn:
        remaining = (await conn.execute(text("SELECT id::text FROM devices"))).scalars().all()
    assert remaining == [live["id"]]


async def test_invalid_input_is_rejected(client):
    cases = [
        {**android(), "platform": "windows"},
        {**android(), "token": "has spaces in it"},
        {**android(), "token": "x" * 2000},
        {**android(), "time_zone": "Mars/Olympus"},
        {**android(), "provider": "apns"},
        {**android(), "topics": ["UPPER"]},
        {**android(), "user_id": str(uuid.uuid4())},
    ]
    for body in cases:
        response = await client.post("/v1/devices", json=body)
        assert response.status_code == 422, body


async def test_two_unregisters_at_once_retire_the_device_once(client, owner_engine):
    # A phone's retry, or the app and its owner at the same moment: one 204 and one audit row.
    unit = await make_unit()
    owner = await make_account(role=Role.MEMBER, unit=unit, enrolled=False)
    owner_headers = await sign_in(client, owner)
    for headers_of in ("credential", "account"):
        device = (await client.post("/v1/devices", json=android(), headers=owner_headers)).json()
        anonymous = (await client.post("/v1/devices", json=android())).json()
        target, headers = (
            (anonymous, {"Authorization": f"Bearer {anonymous['device_credential']}"})
            if headers_of == "credential"
            else (device, owner_headers)
        )
        replies = await asyncio.gather(
            *(client.delete(f"/v1/devices/{target['id']}", headers=headers) for _ in range(3))
        )
        assert sorted(reply.status_code for reply in replies)[0] == 204, headers_of
        assert [reply.status_code for reply in replies].count(204) == 1, (headers_of, replies)
        async with owner_engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM audit_log"
                        " WHERE action = 'device.unregistered' AND object_id = :id"
                    ),
                    {"id": target["id"]},
                )
            ).scalar()
        assert rows == 1, headers_of


async def test_retired_tokens_are_counted_once_their_transaction_has_committed(client):
    # A chunk's write that retires dead tokens is written again after a transient failure; the
    # first try's retirements rolled back and must not stay counted.
    from core.after_commit import committing
    from devices.metrics import TOKENS_INVALIDATED

    dead = uuid.UUID((await client.post("/v1/devices", json=android())).json()["id"])
    counter = TOKENS_INVALIDATED.labels("fcm", "provider_rejected_token")
    before = counter._value.get()

    class Cut(Exception):
        pass

    try:
        async with committing() as session:
            assert await devices.invalidate(session, device_ids=[dead], reason="provider_rejected_token") == 1
            raise Cut
    except Cut:
        pass
    assert counter._value.get() == before
    async with committing() as session:
        assert await devices.invalidate(session, device_ids=[dead], reason="provider_rejected_token") == 1
    assert counter._value.get() == before + 1
