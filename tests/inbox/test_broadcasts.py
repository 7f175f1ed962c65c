"""Broadcasts are stored once and merged into each reader's inbox at read time; read state is
kept per reader (user or anonymous device) only when the reader acts."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text

from core import clock
from tests.inbox.helpers import anonymous_device, insert_notification, send, signed_in, unread
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit


async def _count(owner_engine, table: str) -> int:
    async with owner_engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_a_broadcast_writes_no_inbox_rows_and_each_reader_keeps_their_own_read_state(
    client, owner_engine
):
    sender = await central_sender(client)
    first, second = await anonymous_device(client), await anonymous_device(client)
    user = await signed_in(client, unit=await make_unit())
    notification_id = await send(client, sender)

    assert await _count(owner_engine, "inbox_items") == 0
    for reader in (first, second, user):
        assert await unread(client, reader) == 1
        listed = (await client.get("/v1/inbox", headers=reader.headers)).json()["items"]
        assert [(i["id"], i["broadcast"], i["read"]) for i in listed] == [(notification_id, True, False)]

    response = await client.post(f"/v1/inbox/{notification_id}/read", headers=first.headers)
    assert response.status_code == 200 and response.json()["read"] is True
    again = await client.post(f"/v1/inbox/{notification_id}/read", headers=first.headers)
    assert again.json()["read_at"] == response.json()["read_at"]  # idempotent: the first time stays
    assert (await unread(client, first), await unread(client, second), await unread(client, user)) == (
        0,
        1,
        1,
    )

    await client.post(f"/v1/inbox/{notification_id}/read", headers=user.headers)
    assert (await unread(client, second), await unread(client, user)) == (1, 0)
    assert await _count(owner_engine, "broadcast_states") == 2
    assert await _count(owner_engine, "inbox_items") == 0


async def test_topic_broadcasts_reach_only_readers_of_the_topic(client):
    sender = await central_sender(client)
    follower = await anonymous_device(client, topics=["van-kien"])
    other = await anonymous_device(client, topics=["tu-lieu"])
    user = await signed_in(client, unit=await make_unit(), topics=["van-kien"])
    notification_id = await send(client, sender, audience={"topics": ["van-kien", "hoat-dong"]})

    assert (await unread(client, follower), await unread(client, other), await unread(client, user)) == (
        1,
        0,
        1,
    )
    assert (await client.get(f"/v1/inbox/{notification_id}", headers=follower.headers)).status_code == 200
    assert (await client.get(f"/v1/inbox/{notification_id}", headers=other.headers)).status_code == 404
    assert (await client.post(f"/v1/inbox/{notification_id}/read", headers=other.headers)).status_code == 404


async def test_broadcasts_from_before_a_reader_arrived_are_not_in_their_inbox(client):
    device = await anonymous_device(client)
    old = await insert_notification(
        audience={"all": True}, created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    new = await insert_notification(
        audience={"all": True}, created_at=clock.utcnow() + dt.timedelta(seconds=5)
    )
    listed = [i["id"] for i in (await client.get("/v1/inbox", headers=device.headers)).json()["items"]]
    assert listed == [str(new)]
    assert (await client.get(f"/v1/inbox/{old}", headers=device.headers)).status_code == 404


async def test_a_user_without_a_device_of_the_app_gets_no_broadcasts_of_it(client):
    sender = await central_sender(client)
    staff = await signed_in(client, unit=await make_unit(), portal_locale=None)
    await send(client, sender)
    assert await unread(client, staff) == 0


async def test_a_broadcast_also_targeted_at_a_user_appears_once(client):
    sender = await central_sender(client)
    user = await signed_in(client, unit=await make_unit())
    notification_id = await send(client, sender, audience={"all": True, "users": [str(user.reader_id)]})
    listed = (await client.get("/v1/inbox", headers=user.headers)).json()["items"]
    assert [(i["id"], i["broadcast"]) for i in listed] == [(notification_id, False)]
    assert await unread(client, user) == 1


async def test_archived_items_leave_the_inbox_and_the_count_until_unarchived(client):
    sender = await central_sender(client)
    device = await anonymous_device(client)
    user = await signed_in(client, unit=await make_unit())
    broadcast = await send(client, sender)
    targeted = await send(client, sender, audience={"users": [str(user.reader_id)]})
    for reader, item in ((device, broadcast), (user, targeted), (user, broadcast)):
        response = await client.post(f"/v1/inbox/{item}/archive", headers=reader.headers)
        assert response.status_code == 200 and response.json()["archived"] is True
    assert (await unread(client, device), await unread(client, user)) == (0, 0)
    assert (await client.get("/v1/inbox", headers=user.headers)).json()["items"] == []
    archive = (await client.get("/v1/inbox", params={"archived": "true"}, headers=user.headers)).json()
    assert {i["id"] for i in archive["items"]} == {broadcast, targeted}
    await client.post(f"/v1/inbox/{targeted}/unarchive", headers=user.headers)
    assert [i["id"] for i in (await client.get("/v1/inbox", headers=user.headers)).json()["items"]] == [
        targeted
    ]
    assert await unread(client, user) == 1


async def test_unknown_ids_are_404(client):
    device = await anonymous_device(client)
    for method, path in (
        ("GET", "/v1/inbox/{id}"),
        ("POST", "/v1/inbox/{id}/read"),
        ("POST", "/v1/inbox/{id}/archive"),
    ):
        response = await client.request(method, path.format(id=uuid.uuid4()), headers=device.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
