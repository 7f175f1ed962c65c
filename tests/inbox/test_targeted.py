"""Per-recipient items (users, units with sub-units, roles, devices) and the object-level rule:
an item is visible to its recipients only; everyone else gets 404 on every route."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from auth.roles import Role
from tests.inbox.helpers import anonymous_device, send, signed_in, unread
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit

ITEM_ROUTES = (
    ("GET", "/v1/inbox/{id}", None),
    ("POST", "/v1/inbox/{id}/read", None),
    ("POST", "/v1/inbox/{id}/archive", None),
    ("POST", "/v1/inbox/{id}/unarchive", None),
    ("POST", "/v1/inbox/{id}/receipts", {"event": "received"}),
    ("POST", "/v1/inbox/{id}/receipts", {"event": "opened"}),
)


async def test_every_item_is_404_to_every_other_user_and_device(client):
    sender = await central_sender(client)
    unit = await make_unit()
    readers = [await signed_in(client, unit=unit) for _ in range(2)]
    readers += [await anonymous_device(client, topics=["van-kien"]), await anonymous_device(client)]
    owned: dict[int, list[str]] = {i: [] for i in range(len(readers))}
    for index, reader in enumerate(readers[:2]):
        owned[index].append(await send(client, sender, audience={"users": [str(reader.reader_id)]}))
    for index, reader in enumerate(readers[2:], start=2):
        owned[index].append(await send(client, sender, audience={"devices": [str(reader.reader_id)]}))
    # A topic broadcast only readers[2] follows.
    owned[2].append(await send(client, sender, audience={"topics": ["van-kien"]}))

    for index, reader in enumerate(readers):
        listed = {i["id"] for i in (await client.get("/v1/inbox", headers=reader.headers)).json()["items"]}
        assert listed == set(owned[index])
        for other, ids in owned.items():
            for notification_id in ids:
                for method, path, body in ITEM_ROUTES:
                    response = await client.request(
                        method, path.format(id=notification_id), headers=reader.headers, json=body
                    )
                    expected = 200 if other == index else 404
                    assert response.status_code == expected, (index, other, method, path, response.text)
        read_all = await client.post(
            "/v1/inbox/read-all", json={"up_to": owned[(index + 1) % 4][0]}, headers=reader.headers
        )
        assert read_all.status_code == 404


async def test_a_unit_audience_reaches_every_active_account_of_the_subtree(client, owner_engine):
    sender = await central_sender(client)
    province = await make_unit()
    commune = await make_unit(parent=province)
    elsewhere = await make_unit()
    inside = [await signed_in(client, unit=unit, portal_locale=None) for unit in (province, commune)]
    outside = await signed_in(client, unit=elsewhere, portal_locale=None)
    notification_id = await send(
        client, sender, app="tracking", kind="task.overdue", audience={"units": [str(province.id)]}
    )
    for reader in inside:
        assert await unread(client, reader) == 1
        assert await unread(client, reader, app="portal") == 0
        item = (await client.get(f"/v1/inbox/{notification_id}", headers=reader.headers)).json()
        assert (item["app"], item["kind"], item["broadcast"]) == ("tracking", "task.overdue", False)
    assert await unread(client, outside) == 0
    async with owner_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM inbox_items"))).scalar_one()
    assert rows == 2


async def test_a_role_audience_is_limited_to_the_senders_subtree(client):
    central = await make_unit()
    province = await make_unit(parent=central)
    other_root = await make_unit()
    publisher = await signed_in(client, unit=central, role=Role.PUBLISHER, portal_locale=None)
    leader_inside = await signed_in(client, unit=province, role=Role.LEADER, portal_locale=None)
    leader_outside = await signed_in(client, unit=other_root, role=Role.LEADER, portal_locale=None)
    await send(
        client, publisher.headers, app="tracking", kind="report.rejected", audience={"roles": ["leader"]}
    )
    assert (await unread(client, leader_inside), await unread(client, leader_outside)) == (1, 0)


async def test_a_lost_inbox_fan_out_resumes_from_its_cursor_and_writes_each_row_once(
    client, owner_engine, monkeypatch
):
    from core import clock
    from core.db import transaction
    from inbox import fanout
    from tests.notifications.helpers import run_workers
    from workers.inbox_jobs import inbox_fan_out, inbox_reconcile

    monkeypatch.setattr(fanout, "PAGE_SIZE", 2)
    sender = await central_sender(client)
    unit = await make_unit()
    readers = [await signed_in(client, unit=unit, portal_locale=None) for _ in range(5)]
    response = await client.post(
        "/v1/notifications",
        json={
            "app": "tracking",
            "kind": "task.assigned",
            "title": {"vi": "Nhiệm vụ mới"},
            "body": {"vi": "Xác nhận trong 8 giờ làm việc"},
            "audience": {"units": [str(unit.id)]},
        },
        headers=sender,
    )
    notification_id = response.json()["id"]
    await redis_flush(client)  # the queued jobs are lost
    async with transaction() as session:  # one page written, then the worker died
        assert await fanout.write_page(
            session, notification_id=uuid.UUID(notification_id), now=clock.utcnow()
        )
    assert await _rows(owner_engine) == 2

    assert await inbox_reconcile({}) == 0  # not stalled yet: within the grace period
    clock.advance(120)
    assert await inbox_reconcile({}) == 1
    await run_workers({})
    assert await _rows(owner_engine) == 5
    for reader in readers:
        assert await unread(client, reader) == 1
    await inbox_fan_out({}, notification_id)  # a duplicate job changes nothing
    clock.advance(120)
    assert await inbox_reconcile({}) == 0
    assert await _rows(owner_engine) == 5


async def _rows(owner_engine) -> int:
    async with owner_engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM inbox_items"))).scalar_one())


async def redis_flush(client) -> None:
    from core.redis import get_redis

    await get_redis().flushdb()
