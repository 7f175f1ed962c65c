"""Read-all (optionally up to an item), languages, and what internal / classified items show."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from auth.roles import Role
from core import clock
from tests.inbox.helpers import anonymous_device, insert_notification, send, signed_in, unread
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit


async def test_read_all_up_to_an_item_reads_it_and_everything_older_only(client):
    user = await signed_in(client, unit=await make_unit())
    base = clock.utcnow() + dt.timedelta(seconds=10)
    ids = []
    for minute in range(8):  # alternate broadcasts and the user's own items, oldest first
        audience = {"all": True} if minute % 2 else {"users": [str(user.reader_id)]}
        readers = [] if minute % 2 else [user.reader_id]
        ids.append(
            await insert_notification(
                audience=audience, readers=readers, created_at=base + dt.timedelta(minutes=minute)
            )
        )
    assert await unread(client, user) == 8

    response = await client.post("/v1/inbox/read-all", json={"up_to": str(ids[4])}, headers=user.headers)
    assert response.status_code == 200 and response.json() == {"unread": 3}
    listed = (await client.get("/v1/inbox", headers=user.headers)).json()["items"]
    assert [(i["id"], i["read"]) for i in listed] == [
        (str(n), index <= 4) for index, n in reversed(list(enumerate(ids)))
    ]
    unread_ids = [
        i["id"]
        for i in (await client.get("/v1/inbox", params={"unread": "true"}, headers=user.headers)).json()[
            "items"
        ]
    ]
    assert unread_ids == [str(ids[7]), str(ids[6]), str(ids[5])]

    # The marker never moves back: read-all up to an older item un-reads nothing.
    await client.post("/v1/inbox/read-all", json={"up_to": str(ids[1])}, headers=user.headers)
    assert await unread(client, user) == 3
    assert (await client.post("/v1/inbox/read-all", json={}, headers=user.headers)).json() == {"unread": 0}
    # A broadcast arriving after read-all is unread again.
    await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(minutes=9))
    assert await unread(client, user) == 1


async def test_read_all_of_one_app_leaves_the_other(client):
    sender = await central_sender(client)
    user = await signed_in(client, unit=await make_unit())
    await send(client, sender)
    await send(client, sender, app="tracking", audience={"users": [str(user.reader_id)]})
    assert (await client.post("/v1/inbox/read-all", json={"app": "portal"}, headers=user.headers)).json() == {
        "unread": 0
    }
    assert (await unread(client, user), await unread(client, user, app="tracking")) == (1, 1)


async def test_read_all_of_an_anonymous_device_is_its_own(client):
    sender = await central_sender(client)
    first, second = await anonymous_device(client), await anonymous_device(client)
    await send(client, sender)
    await send(client, sender, collapse_key="b")
    assert (await client.post("/v1/inbox/read-all", headers=first.headers)).json() == {"unread": 0}
    assert await unread(client, second) == 2


async def test_each_reader_sees_their_language_with_vietnamese_as_fallback(client):
    sender = await central_sender(client)
    english = await anonymous_device(client, locale="en")
    russian = await anonymous_device(client, locale="ru")
    user = await signed_in(client, unit=await make_unit(), portal_locale="en")
    await send(client, sender)
    for reader, title in ((english, "News"), (russian, "Tin mới"), (user, "News")):
        item = (await client.get("/v1/inbox", headers=reader.headers)).json()["items"][0]
        assert item["title"] == title
        assert item["language"] == ("en" if title == "News" else "vi")


async def test_internal_and_classified_content_only_through_the_item_endpoint(client, owner_engine):
    sender = await central_sender(client)
    unit = await make_unit()
    leader = await signed_in(client, unit=unit, role=Role.LEADER, portal_locale="en")
    internal = await send(
        client,
        sender,
        app="tracking",
        kind="task.reminder",
        sensitivity="internal",
        title={"vi": "Nhắc việc 012_TBKL_NQ57"},
        body={"vi": "Hạn chót ngày mai"},
        audience={"users": [str(leader.reader_id)]},
    )
    classified = await send(
        client,
        sender,
        app="tracking",
        kind="task.status",
        sensitivity="classified",
        title={"vi": "Nhiệm vụ mật"},
        body={"vi": "Đã hoàn thành"},
        data={"task": "x"},
        deep_link="chuong-tracking://tasks/x",
        audience={"users": [str(leader.reader_id)]},
    )
    listed = (await client.get("/v1/inbox", headers=leader.headers)).json()["items"]
    assert len(listed) == 2
    for item in listed:
        assert item["content_hidden"] is True
        assert item["title"] == "You have a new notification" and item["body"] is None
        assert item["deep_link"] is None and item["data"] == {}
        assert item["kind"] in ("task.reminder", "task.status")
    full = (await client.get(f"/v1/inbox/{internal}", headers=leader.headers)).json()
    assert (full["title"], full["body"], full["content_hidden"]) == (
        "Nhắc việc 012_TBKL_NQ57",
        "Hạn chót ngày mai",
        False,
    )
    status_only = (await client.get(f"/v1/inbox/{classified}", headers=leader.headers)).json()
    assert (status_only["title"], status_only["body"]) == ("Nhiệm vụ mật", "Đã hoàn thành")
    assert status_only["data"] == {} and status_only["deep_link"] is None
    # Marking read answers in the list's form: still no content.
    assert (await client.post(f"/v1/inbox/{classified}/read", headers=leader.headers)).json()["body"] is None
    async with owner_engine.connect() as conn:
        viewed = (
            await conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'inbox.sensitive_viewed'"))
        ).scalar_one()
    assert viewed == 2


async def test_anonymous_devices_must_sign_in_for_sensitive_content(client):
    sender = await central_sender(client)
    device = await anonymous_device(client)
    notification_id = await send(client, sender, sensitivity="internal")
    listed = (await client.get("/v1/inbox", headers=device.headers)).json()["items"]
    assert listed[0]["content_hidden"] is True
    response = await client.get(f"/v1/inbox/{notification_id}", headers=device.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "sign_in_required"


async def test_filters_by_kind_app_and_since(client):
    sender = await central_sender(client)
    user = await signed_in(client, unit=await make_unit())
    news = await send(client, sender)
    task = await send(
        client, sender, app="tracking", kind="task.overdue", audience={"users": [str(user.reader_id)]}
    )

    def ids(response):
        return [i["id"] for i in response.json()["items"]]

    assert ids(await client.get("/v1/inbox", params={"kind": "task.overdue"}, headers=user.headers)) == [task]
    assert ids(await client.get("/v1/inbox", params={"app": "portal"}, headers=user.headers)) == [news]
    future = (clock.utcnow() + dt.timedelta(days=1)).isoformat()
    assert ids(await client.get("/v1/inbox", params={"since": future}, headers=user.headers)) == []
    bad = await client.get("/v1/inbox", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=user.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
