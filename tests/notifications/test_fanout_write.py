"""Fan-out pages written with the notification row locked by one statement only (issue 16: the
chunks' records, which update that row, queued behind each page's whole transaction). What the
lock held across the page used to guarantee still holds: a page is written once however many
fan-outs of the notification run, nothing is written after a cancel, and the notification's
counters and completion come out as ``fan_out_page`` sets them."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from sqlalchemy import func, select, update

from core.after_commit import committing
from core.db import transaction, utcnow
from notifications import fanout
from notifications import service as notifications_service
from notifications.models import Delivery, DeliveryBatch, Notification
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load
from tests.support.held_rows import until_waiting


@pytest.fixture
def pages_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "PAGE_SIZE", 2)


async def _devices(count: int) -> list[uuid.UUID]:
    return await register_devices([("fcm", f"fcm-{uuid.uuid4().hex}", "vi") for _ in range(count)])


async def _write(plan: fanout._Plan) -> bool | None:
    async with committing() as session:
        return await fanout._write_page(session, plan, now=utcnow())


async def _batches(notification_id: uuid.UUID) -> list[tuple[int, int]]:
    async with transaction() as session:
        rows = await session.execute(
            select(DeliveryBatch.low_id, DeliveryBatch.high_id)
            .where(DeliveryBatch.notification_id == notification_id)
            .order_by(DeliveryBatch.low_id)
        )
        return [(low, high) for low, high in rows]


async def test_pages_and_counters_as_the_locking_path_writes_them(client, pages_of_two):
    devices = await _devices(5)
    notification_id = uuid.UUID(await broadcast(client, await central_sender(client)))
    assert await fanout.fan_out(notification_id=notification_id) == 3
    notification, deliveries = await load(notification_id)
    assert sorted(d.device_id for d in deliveries) == sorted(devices)
    assert notification.targeted == 5 and notification.status == "sending"
    assert notification.fanout_done_at is not None and notification.completed_at is None
    assert notification.fanout_cursor == max(devices)
    assert [high - low + 1 for low, high in await _batches(notification_id)] == [2, 2, 1]


async def test_a_stale_plan_writes_nothing_and_the_page_is_written_once(client, pages_of_two):
    # Two fan-outs of one notification (arq runs a job twice, the reconciler queues another):
    # both planned from the same cursor; the second finds it moved and writes nothing.
    await _devices(5)
    notification_id = uuid.UUID(await broadcast(client, await central_sender(client)))
    plan = await fanout._plan(notification_id, now=utcnow())
    assert plan is not None
    stale = dataclasses.replace(plan)
    assert await _write(plan) is True
    assert await _write(stale) is None
    assert len(await _batches(notification_id)) == 1
    # The job carries on with the locking path, from the cursor the first write left.
    await fanout.fan_out(notification_id=notification_id)
    notification, deliveries = await load(notification_id)
    assert len(deliveries) == len({d.device_id for d in deliveries}) == 5
    assert notification.targeted == 5
    assert [high - low + 1 for low, high in await _batches(notification_id)] == [2, 2, 1]


async def test_nothing_is_written_after_a_cancel(client, pages_of_two):
    await _devices(5)
    notification_id = uuid.UUID(await broadcast(client, await central_sender(client)))
    plan = await fanout._plan(notification_id, now=utcnow())
    assert plan is not None
    assert await _write(plan) is True
    async with committing() as session:
        await notifications_service.cancel(session, notification_id=notification_id, now=utcnow())
    assert await _write(plan) is None
    assert await fanout.fan_out(notification_id=notification_id) == 1  # the locking path stops
    notification, deliveries = await load(notification_id)
    assert notification.status == "cancelled" and notification.targeted == 2
    assert {d.status for d in deliveries} == {"cancelled"} and len(deliveries) == 2


async def _two_full_pages_of_four(client) -> tuple[uuid.UUID, fanout._Plan]:
    """Four devices, pages of two: both full pages written; the last (empty) one is left."""
    await _devices(4)
    notification_id = uuid.UUID(await broadcast(client, await central_sender(client)))
    plan = await fanout._plan(notification_id, now=utcnow())
    assert plan is not None
    assert await _write(plan) is True
    assert await _write(plan) is True
    return notification_id, plan


async def test_the_last_page_completes_a_notification_already_sent(client, pages_of_two):
    # Four devices: two full pages, then an empty last one, by which time every row was sent.
    notification_id, plan = await _two_full_pages_of_four(client)
    async with transaction() as session:
        await session.execute(update(Notification).where(Notification.id == notification_id).values(sent=4))
    assert await _write(plan) is False
    notification, _ = await load(notification_id)
    assert notification.status == "completed" and notification.completed_at is not None
    assert notification.targeted == 4 and notification.fanout_done_at is not None


async def test_the_last_page_sees_counters_committed_while_it_waited_for_the_lock(
    client, owner_engine, pages_of_two
):
    # A chunk's record holds the notification row (it adds to ``sent``) when the last page's
    # statement arrives; the statement's snapshot predates the record's commit, yet completion
    # must be judged on the row as the record left it (the row locked after a wait is read again
    # in its newest version), or the notification would stay "sending" with every row sent.
    notification_id, plan = await _two_full_pages_of_four(client)
    async with transaction() as record:
        await record.execute(update(Notification).where(Notification.id == notification_id).values(sent=4))
        last = asyncio.ensure_future(_write(plan))
        assert await until_waiting(owner_engine) and not last.done()  # the page waits for the row
    assert await last is False
    notification, _ = await load(notification_id)
    assert notification.status == "completed" and notification.completed_at is not None
    assert notification.targeted == 4 and notification.sent == 4


async def test_an_audience_of_nobody_completes(client):
    await _devices(2)
    notification_id = uuid.UUID(
        await broadcast(client, await central_sender(client), audience={"topics": ["nobody-follows"]})
    )
    assert await fanout.fan_out(notification_id=notification_id) == 1
    notification, _ = await load(notification_id)
    assert notification.status == "completed" and notification.targeted == 0
    async with transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.notification_id == notification_id)
        )
    assert count == 0
