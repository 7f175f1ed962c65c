"""Cancel while the first pushes of a full batch (500 devices, default chunking) are at a slow
provider (issue 12 item 3): once the cancel has answered, only the requests already on the wire
may reach the provider; everything else of the notification ends ``cancelled``. Also the same
class of bug around it (a check at the wrong moment): the TTL passing mid-batch, a recall's
retract reading its recipients before the original's last results are in, the reconciler racing a
cancel, a scheduled item cancelled before its time."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import update

from core import clock
from core.config import get_settings
from core.db import transaction
from emulator import Emulator
from notifications import service as notifications
from notifications.models import Notification
from tests.news.helpers import apns, approve, fcm, make_desk, readers, submitted
from tests.notifications.helpers import load, run_workers
from workers import delivery_jobs
from workers.delivery_jobs import fan_out, send_batch
from workers.news_jobs import news_tick

LATENCY_MS = 1500
READERS = 500  # one fan-out page, one send batch: four chunks of 125, two at a time
IN_FLIGHT = 100  # fewer slots than a window of chunks (250): some requests wait for one


@pytest.fixture
def emulated_settings(emulated_settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(emulated_settings, "fcm_max_in_flight", IN_FLIGHT)
    monkeypatch.setattr(emulated_settings, "apns_max_in_flight", IN_FLIGHT)
    return emulated_settings


async def _until(condition: Callable[[], bool], *, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _received_after(emulator: Emulator, moment: float) -> int:
    return sum(1 for record in emulator.log.find(limit=10 * READERS) if record.received_at > moment)


async def _sending_item(client, desk) -> dict:
    item_id = await submitted(client, desk)
    approved = await approve(client, desk, item_id)
    assert approved.status_code == 200, approved.text
    return approved.json()


async def _cancel_mid_batch(client, emulator, worker_ctx, devices, in_flight: int) -> dict:
    """Approve, start the batch against the slow provider, cancel through the API once
    ``in_flight`` requests are at the provider; returns what the check needs."""
    await readers(devices)
    desk = await make_desk(client)
    item = await _sending_item(client, desk)
    emulator.faults.update({"latency_ms": LATENCY_MS})
    batch = asyncio.create_task(send_batch(worker_ctx, item["notification_id"]))
    await _until(lambda: len(emulator.log) >= in_flight)
    cancelled = await client.post(
        f"/v1/news/{item['id']}/cancel", headers=desk.headers["editor"], json={"reason": "Sai số liệu"}
    )
    answered = time.time()
    assert cancelled.status_code == 200, cancelled.text
    on_the_wire = len(emulator.log)
    outcome = await batch
    emulator.faults.update({"latency_ms": 0})
    await run_workers(worker_ctx)
    await news_tick({})
    stats = (await client.get(f"/v1/news/{item['id']}", headers=desk.headers["editor"])).json()["stats"]
    return {
        "late": _received_after(emulator, answered),
        "on_the_wire": on_the_wire,
        "stats": stats,
        "outcome": outcome,
        "notification_id": item["notification_id"],
    }


async def test_after_a_news_cancel_answers_only_requests_already_on_the_wire_reach_fcm(
    client, emulator, worker_ctx
):
    limit = get_settings().fcm_max_in_flight  # 100 of the first two chunks' 250 are on the wire
    seen = await _cancel_mid_batch(client, emulator, worker_ctx, fcm(READERS), limit)
    # Before the fix (two sequential chunks of 250): the 150 requests of chunk 1 still waiting
    # for a slot went out after the cancel, and so did all 250 of chunk 2: 400 late.
    assert seen["late"] <= limit, seen
    assert len(emulator.log) == seen["on_the_wire"] <= limit
    stats = seen["stats"]
    assert stats["notification_status"] == "cancelled"
    assert stats["sent"] == len(emulator.log)
    assert (stats["targeted"], stats["cancelled"], stats["pending"]) == (READERS, READERS - stats["sent"], 0)
    assert seen["outcome"]["stopped"] == 250 - stats["sent"]


async def test_after_a_news_cancel_answers_only_requests_already_on_the_wire_reach_apns(
    client, emulator, worker_ctx
):
    limit = get_settings().apns_max_in_flight  # within one connection's streams (the emulator: 100)
    seen = await _cancel_mid_batch(client, emulator, worker_ctx, apns(READERS), limit)
    assert seen["late"] <= limit, seen
    assert len(emulator.log) == seen["on_the_wire"] <= limit
    stats = seen["stats"]
    assert stats["notification_status"] == "cancelled"
    assert (stats["sent"], stats["cancelled"], stats["pending"]) == (
        len(emulator.log),
        READERS - len(emulator.log),
        0,
    )


async def test_without_the_cancel_signal_the_next_chunk_is_checked_once_the_current_one_is_answered(
    client, emulator, worker_ctx
):
    """Redis down, or a worker that did not hear the cancel: the status read before the next
    chunk is the fallback, and it must be read after the current chunk, not when it started."""
    await readers(fcm(READERS))
    desk = await make_desk(client)
    item = await _sending_item(client, desk)
    nid = item["notification_id"]
    emulator.faults.update({"latency_ms": LATENCY_MS})
    batch = asyncio.create_task(send_batch(worker_ctx, nid))
    await _until(lambda: len(emulator.log) >= get_settings().fcm_max_in_flight)
    async with transaction() as session:  # a commit with no signal to the workers
        await notifications.cancel(session, notification_id=uuid.UUID(nid), now=clock.utcnow())
    outcome = await batch
    emulator.faults.update({"latency_ms": 0})
    # Chunks 1 and 2 (250) were under way; chunk 3 never started. Before the fix all 500 went out.
    assert len(emulator.log) == outcome["claimed"] == 250
    notification, deliveries = await load(nid)
    assert (notification.sent, notification.cancelled, notification.status) == (250, 250, "cancelled")
    assert sorted({d.status for d in deliveries}) == ["cancelled", "sent"]


async def test_the_ttl_passing_during_a_chunk_stops_the_batch_before_the_next_one(
    client, emulator, worker_ctx
):
    await readers(fcm(READERS))
    desk = await make_desk(client)
    item_id = await submitted(client, desk, ttl_seconds=60)
    approved = await approve(client, desk, item_id)
    assert approved.status_code == 200, approved.text
    nid = approved.json()["notification_id"]
    emulator.faults.update({"latency_ms": 300})
    batch = asyncio.create_task(send_batch(worker_ctx, nid))
    await _until(lambda: len(emulator.log) >= 1)
    clock.advance(61)  # the push is pointless from now on
    outcome = await batch
    emulator.faults.update({"latency_ms": 0})
    # Before the fix the second half was sent after the TTL too (500 requests).
    assert len(emulator.log) == outcome["claimed"] == 250
    notification, deliveries = await load(nid)
    assert (notification.sent, notification.failed) == (250, 250)
    assert {d.error_code for d in deliveries if d.status == "failed"} == {"expired"}
    await run_workers(worker_ctx)  # the fan-out's last (empty) page finds the TTL passed
    notification, _ = await load(nid)
    assert notification.status == "expired" and len(emulator.log) == 250


def _is_retract(record) -> bool:
    return record.as_json()["payload"]["message"].get("data", {}).get("action") == "retract"


async def test_a_recall_mid_send_retracts_from_every_device_the_original_reached(
    client, emulator, worker_ctx
):
    """The retract goes to the original's ``sent`` rows: it must wait for the requests that were
    still on the wire when the recall cancelled the original, or those phones keep the story."""
    await readers(fcm(READERS))
    desk = await make_desk(client)
    item = await _sending_item(client, desk)
    emulator.faults.update({"latency_ms": LATENCY_MS})
    batch = asyncio.create_task(send_batch(worker_ctx, item["notification_id"]))
    await _until(lambda: len(emulator.log) >= get_settings().fcm_max_in_flight)
    recalled = await client.post(
        f"/v1/news/{item['id']}/recall", headers=desk.headers["publisher"], json={"reason": "Tin sai"}
    )
    assert recalled.status_code == 200, recalled.text
    emulator.faults.update({"latency_ms": 0})
    await run_workers(worker_ctx)  # the retract's fan-out, while the original's pushes are out
    await batch
    # Its fan-out looks again a second later (a job deferred in real time, which the sign-ins'
    # clock moves put out of reach here): run it as that job would.
    await fan_out(worker_ctx, recalled.json()["retract_notification_id"])
    await run_workers(worker_ctx)
    records = emulator.log.find(limit=10 * READERS)
    reached = {record.token for record in records if not _is_retract(record)}
    retracted = {record.token for record in records if _is_retract(record)}
    # Before the fix the retract's fan-out found no recorded recipient yet: no retract at all.
    assert reached and retracted == reached


async def test_a_scheduled_item_cancelled_before_its_time_is_never_released(client, emulator, worker_ctx):
    await readers(fcm(3))
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    send_at = (clock.utcnow() + dt.timedelta(minutes=2)).isoformat()
    scheduled = await approve(client, desk, item_id, send_at=send_at)
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    cancelled = await client.post(
        f"/v1/news/{item_id}/cancel", headers=desk.headers["editor"], json={"reason": "Hoãn"}
    )
    assert cancelled.status_code == 200, cancelled.text
    clock.advance(121)
    assert (await news_tick({}))["released"] == 0
    await run_workers(worker_ctx)
    item = (await client.get(f"/v1/news/{item_id}", headers=desk.headers["editor"])).json()
    assert (item["status"], item["notification_id"], len(emulator.log)) == ("cancelled", None, 0)


async def test_the_reconciler_expiring_a_push_never_overwrites_a_cancel_it_raced(client):
    await readers(fcm(3))
    desk = await make_desk(client)
    item_id = await submitted(client, desk, ttl_seconds=60)
    approved = await approve(client, desk, item_id)
    nid = uuid.UUID(approved.json()["notification_id"])
    async with transaction() as session:  # as if its fan-out had not run yet (Redis was down)
        await session.execute(
            update(Notification).where(Notification.id == nid).values(status="queued", fanout_done_at=None)
        )
    clock.advance(61)  # past its TTL, nothing sent yet: the reconciler's to expire
    async with transaction() as session:  # an editor's cancel, committing a moment later
        assert await notifications.cancel(session, notification_id=nid, now=clock.utcnow()) == 3
        reconciling = asyncio.create_task(delivery_jobs.reconcile({}))
        await asyncio.sleep(0.5)
        assert not reconciling.done()  # it read the notification as active and waits for its row
    await reconciling
    notification, deliveries = await load(nid)
    # Before the fix it wrote ``sending`` over the cancel and then completed the notification.
    assert (notification.status, notification.cancelled) == ("cancelled", 3)
    assert {d.status for d in deliveries} == {"cancelled"}
