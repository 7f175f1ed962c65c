"""The unread badge of pushes: per delivery, the reader's unread count for the notification's app
including the notification being sent, computed for a whole batch in a few queries."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import event, select

from core import clock
from core.config import get_settings
from core.db import get_engine, transaction
from devices.models import Device
from inbox import badges
from inbox.badges import unread_badges
from notifications.payloads import BADGE_CAP
from tests.inbox.helpers import Caller, anonymous_device, insert_notification, signed_in, unread
from tests.notifications import conftest as pipeline
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, run_workers
from tests.support.factories import make_unit


async def _device_ids(caller: Caller) -> list[uuid.UUID]:
    if caller.account is None:
        return [caller.reader_id]
    async with transaction() as session:
        rows = await session.execute(select(Device.id).where(Device.user_id == caller.reader_id))
        return sorted(rows.scalars())


async def _badges(notification_id: uuid.UUID, *callers: Caller) -> list[list[int]]:
    """Per caller, the badges of each of their devices, computed as one batch."""
    devices = {caller.reader_id: await _device_ids(caller) for caller in callers}
    async with transaction() as session:
        badges = await unread_badges(
            session,
            notification_id=notification_id,
            device_ids=[d for ids in devices.values() for d in ids],
            now=clock.utcnow(),
        )
    return [[badges[d] for d in devices[caller.reader_id]] for caller in callers]


# The in-process emulator and real providers of the pipeline tests, as fixtures of this module.
emulator, emulated_settings = pipeline.emulator, pipeline.emulated_settings
providers, worker_ctx = pipeline.providers, pipeline.worker_ctx


def _at(seconds: float) -> dt.datetime:
    # After the readers registered: broadcasts from before a reader arrived are not theirs.
    return clock.utcnow() + dt.timedelta(seconds=seconds)


async def test_badges_match_the_unread_count_of_every_kind_of_reader(client):
    unit = await make_unit()
    follower = await anonymous_device(client, topics=["van-kien"])
    plain = await anonymous_device(client)
    user = await signed_in(client, unit=unit, topics=["tu-lieu"])
    readers = (follower, plain, user)
    await insert_notification(audience={"all": True}, created_at=_at(1))
    section = await insert_notification(audience={"topics": ["van-kien"]}, created_at=_at(2))
    topical = await insert_notification(audience={"topics": ["tu-lieu"]}, created_at=_at(3))
    own = await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(4)
    )
    await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(5), app="tracking"
    )
    # Both a broadcast and the user's own row: counts once.
    await insert_notification(audience={"all": True}, readers=[user.reader_id], created_at=_at(6))
    await insert_notification(audience={"topics": ["other"]}, created_at=_at(7))
    sending = await insert_notification(audience={"all": True}, created_at=_at(8))

    assert [await unread(client, r, app="portal") for r in readers] == [4, 3, 5]
    assert await _badges(sending, *readers) == [[4], [3], [5]]

    # Reading one by one, archiving, and read-all up to an item take the same items out.
    assert (await client.post(f"/v1/inbox/{own}/read", headers=user.headers)).status_code == 200
    assert (await client.post(f"/v1/inbox/{topical}/archive", headers=user.headers)).status_code == 200
    response = await client.post("/v1/inbox/read-all", json={"up_to": str(section)}, headers=follower.headers)
    assert response.status_code == 200
    expected = [await unread(client, r, app="portal") for r in readers]
    assert expected == [2, 3, 3]
    assert await _badges(sending, *readers) == [[2], [3], [3]]

    # Read-all of everything: the badge is the notification being sent, and nothing else...
    for reader in readers:
        assert (
            await client.post("/v1/inbox/read-all", json={"app": "portal"}, headers=reader.headers)
        ).json() == {"unread": 0}
    later = await insert_notification(audience={"all": True}, created_at=_at(9))
    assert await _badges(later, *readers) == [[1], [1], [1]]
    # ...and once the reader has read it (a retried push), it no longer counts.
    await client.post(f"/v1/inbox/{later}/read", headers=plain.headers)
    assert await _badges(later, *readers) == [[1], [0], [1]]


async def test_the_notification_being_sent_counts_before_its_inbox_row_is_written(client):
    user = await signed_in(client, unit=await make_unit())
    await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(1)
    )
    # The push can go out before the inbox fan-out job wrote the reader's row.
    pending = await insert_notification(audience={"users": [str(user.reader_id)]}, created_at=_at(2))
    assert await unread(client, user, app="portal") == 1
    assert await _badges(pending, user) == [[2]]


async def test_a_push_that_is_no_inbox_item_does_not_count_itself(client):
    device = await anonymous_device(client)
    original = await insert_notification(audience={"all": True}, created_at=_at(1))
    # A recall's retract push goes to the original's recipients and is not an inbox item.
    retract = await insert_notification(audience={"recipients_of": str(original)}, created_at=_at(2))
    assert await unread(client, device) == 1
    assert await _badges(retract, device) == [[1]]


async def test_every_device_of_an_account_shows_the_account_count(client):
    user = await signed_in(client, unit=await make_unit())
    second_device = await client.post(
        "/v1/devices",
        json={"app": "portal", "platform": "android", "token": f"fcm-{uuid.uuid4().hex}", "locale": "en"},
        headers=user.headers,
    )
    assert second_device.status_code == 201, second_device.text
    device = await anonymous_device(client)
    await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(1)
    )
    sending = await insert_notification(audience={"all": True}, created_at=_at(2))
    assert await _badges(sending, user, device) == [[2, 2], [1]]
    # An account without a live device of the app has no broadcasts of it, only its own rows.
    tracking = await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(3), app="tracking"
    )
    assert await _badges(tracking, user) == [[1, 1]]


async def test_badges_are_capped_and_take_a_fixed_number_of_queries(client, monkeypatch):
    user = await signed_in(client, unit=await make_unit())
    devices = [await anonymous_device(client) for _ in range(12)]
    for second in range(BADGE_CAP + 5):
        await insert_notification(
            audience={"users": [str(user.reader_id)]},
            readers=[user.reader_id],
            created_at=_at(1 + second / 100),
        )
    sending = await insert_notification(audience={"all": True}, created_at=_at(3))
    device_ids = await _device_ids(user) + [device.reader_id for device in devices]
    fetch_on_driver = badges._fetch

    async def counted(ids: list[uuid.UUID]) -> tuple[dict[uuid.UUID, int], int]:
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append(statement)

        async def fetch(driver: Any, sql: str, *args: Any) -> list[Any]:
            statements.append(sql)
            return await fetch_on_driver(driver, sql, *args)

        # Badges run their hot statements on the asyncpg connection itself: count those too.
        monkeypatch.setattr(badges, "_fetch", fetch)
        engine = get_engine().sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            async with transaction() as session:
                found = await unread_badges(
                    session, notification_id=sending, device_ids=ids, now=clock.utcnow()
                )
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return found, len(statements)

    one, queries_for_one = await counted(device_ids[:2])
    found, queries_for_all = await counted(device_ids)
    assert [found[d] for d in device_ids] == [BADGE_CAP] + [1] * len(devices)
    assert one == {d: found[d] for d in device_ids[:2]}
    # The notification with its app's window fingerprint, then every device with its reader's
    # state (and, the first time, the window itself): never one per device.
    assert queries_for_all <= queries_for_one <= 3


async def test_the_row_of_the_notification_being_sent_counts_once_and_not_once_read(client):
    user = await signed_in(client, unit=await make_unit())
    for second in (1, 2):
        await insert_notification(
            audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(second)
        )
    sending = await insert_notification(
        audience={"users": [str(user.reader_id)]}, readers=[user.reader_id], created_at=_at(3)
    )
    assert await unread(client, user, app="portal") == 3
    assert await _badges(sending, user) == [[3]]
    # A retried push after the reader read it: it no longer counts, the others still do.
    assert (await client.post(f"/v1/inbox/{sending}/read", headers=user.headers)).status_code == 200
    assert await unread(client, user, app="portal") == 2
    assert await _badges(sending, user) == [[2]]


async def test_a_broadcast_being_sent_counts_once_whether_or_not_it_matches_the_readers_topics(client):
    # Before the readers arrived: in nobody's inbox.
    await insert_notification(audience={"all": True}, created_at=clock.utcnow() - dt.timedelta(hours=1))
    follower = await anonymous_device(client, topics=["van-kien"])
    plain = await anonymous_device(client, topics=["tu-lieu"])
    await insert_notification(audience={"all": True}, created_at=_at(1))
    await insert_notification(audience={"topics": ["tu-lieu"]}, created_at=_at(2))
    sending = await insert_notification(audience={"topics": ["van-kien"]}, created_at=_at(3))
    # The follower's inbox has it already; the other reader's gets it with the push.
    assert [await unread(client, r) for r in (follower, plain)] == [2, 2]
    assert await _badges(sending, follower, plain) == [[2], [3]]


async def test_an_anonymous_device_has_no_broadcasts_of_another_app(client):
    device = await anonymous_device(client, topics=["van-kien"])
    await insert_notification(audience={"all": True}, created_at=_at(1), app="tracking")
    sending = await insert_notification(audience={"all": True}, created_at=_at(2), app="tracking")
    # A device credential reads its own app's inbox only.
    assert await unread(client, device, app="tracking") == 0
    assert await _badges(sending, device) == [[1]]


async def test_pushes_carry_the_badge_on_apns_and_fcm(client, emulator, worker_ctx):
    fcm_token, apns_token = f"fcm-{uuid.uuid4().hex}", uuid.uuid4().hex * 2
    await register_devices([("fcm", fcm_token, "vi"), ("apns", apns_token, "en")])
    headers = await central_sender(client)
    first = await broadcast(client, headers)
    await run_workers(worker_ctx)
    # An internal notification: no content in the push, but the badge is still there (a number).
    second = await broadcast(client, headers, collapse_key="a-2", sensitivity="internal")
    await run_workers(worker_ctx)

    fcm = [r.as_json()["payload"]["message"] for r in emulator.log.find(token=fcm_token)]
    apns = [r.as_json()["payload"] for r in emulator.log.find(token=apns_token)]
    assert len(fcm) == len(apns) == 2
    by_id = {m["data"]["notification_id"]: m for m in fcm}
    assert by_id[first]["android"]["notification"]["notification_count"] == 1
    assert by_id[first]["data"]["badge"] == "1"
    internal = by_id[second]
    assert internal["android"]["notification"]["notification_count"] == 2
    assert internal["data"] == {
        "notification_id": second,
        "sensitivity": "internal",
        "badge": "2",
    }
    apns_by_id = {p["notification_id"]: p for p in apns}
    assert apns_by_id[first]["aps"]["badge"] == 1
    assert apns_by_id[second]["aps"]["badge"] == 2
    assert "Story body" not in str(apns_by_id[second])


async def test_the_in_memory_broadcast_window_follows_every_change(client):
    """The unread count and the first page use each process's cached window of broadcasts
    (inbox.queries.BroadcastWindow); new, late-committed and read or archived broadcasts still
    show at once, and a page whose newest broadcasts were archived is still complete."""
    reader = await anonymous_device(client, topics=["van-kien"])
    base = _at(1)
    ids = [
        await insert_notification(
            audience={"all": True} if n % 2 else {"topics": ["van-kien"]},
            created_at=base + dt.timedelta(seconds=10 + n),
        )
        for n in range(30)
    ]
    await insert_notification(audience={"topics": ["other"]}, created_at=base + dt.timedelta(seconds=50))
    assert await unread(client, reader) == 30
    # A broadcast committed late, with an older time than the newest: counted at once.
    late = await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=5))
    assert await unread(client, reader) == 31
    # Archive the 22 newest: the first page must reach past them to the older ones.
    for notification_id in ids[8:]:
        response = await client.post(f"/v1/inbox/{notification_id}/archive", headers=reader.headers)
        assert response.status_code == 200
    page = (await client.get("/v1/inbox", params={"limit": 5}, headers=reader.headers)).json()
    assert [item["id"] for item in page["items"]] == [str(n) for n in reversed(ids[3:8])]
    rest = (
        await client.get(
            "/v1/inbox", params={"limit": 5, "cursor": page["next_cursor"]}, headers=reader.headers
        )
    ).json()
    assert [item["id"] for item in rest["items"]] == [str(n) for n in reversed(ids[:3])] + [str(late)]
    assert await unread(client, reader) == 9
    sending = await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=60))
    assert await _badges(sending, reader) == [[10]]


async def test_badges_can_be_switched_off(client, emulator, worker_ctx, monkeypatch):
    monkeypatch.setattr(get_settings(), "push_badges", False)
    fcm_token, apns_token = f"fcm-{uuid.uuid4().hex}", uuid.uuid4().hex * 2
    await register_devices([("fcm", fcm_token, "vi"), ("apns", apns_token, "en")])
    headers = await central_sender(client)
    await broadcast(client, headers)
    await run_workers(worker_ctx)
    [fcm] = [r.as_json()["payload"]["message"] for r in emulator.log.find(token=fcm_token)]
    [apns] = [r.as_json()["payload"] for r in emulator.log.find(token=apns_token)]
    assert "badge" not in fcm["data"] and "notification_count" not in fcm["android"].get("notification", {})
    assert "badge" not in apns["aps"] and "badge" not in apns
