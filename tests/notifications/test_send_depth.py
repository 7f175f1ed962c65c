"""How deep one worker's send pipeline is (issue 16 item 2: latency hidden), and what that depth
lets through after a cancel that did not reach the worker.

Two batches of 500 at a provider answering after LATENCY_MS, sent by one process's send slots
(default settings: one batch starting at a time). A batch hands the next one its start once its
first window of chunks (CHUNKS_IN_FLIGHT × 125) is at the provider, so within the first round
trip both batches' first windows are on the wire; each batch still starts chunk k + 2 only once
chunk k is answered and written, which bounds what a cancel without its signal lets through to
one window per batch (docs/delivery.md "Guarantees", "Provider latency")."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select

from core import clock
from core.config import get_settings
from core.db import transaction
from inbox.badges import unread_badges
from notifications import delivery, fanout
from notifications import service as notifications
from notifications.models import Delivery, DeliveryBatch
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load

LATENCY_MS = 2000
BATCH = 500
DEVICES = 2 * BATCH
WINDOW = delivery.CHUNKS_IN_FLIGHT * -(-BATCH // delivery.SEND_CHUNKS)  # 250 requests


@pytest.fixture
def emulated_settings(emulated_settings, monkeypatch: pytest.MonkeyPatch):
    # Enough provider slots for both batches' windows: the depth measured is the pipeline's.
    monkeypatch.setattr(emulated_settings, "fcm_max_in_flight", 2 * WINDOW)
    return emulated_settings


async def _until(condition: Callable[[], bool], *, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def _two_batches(client) -> tuple[str, list[int], dict[str, int]]:
    """A broadcast to DEVICES FCM devices, fanned out: its id, its pages' low ids and each
    device token's page."""
    tokens = [f"fcm-{i}-{uuid.uuid4().hex}" for i in range(DEVICES)]
    device_ids = await register_devices([("fcm", token, "vi") for token in tokens])
    token_of = dict(zip(device_ids, tokens, strict=True))
    nid = await broadcast(client, await central_sender(client))
    await fanout.fan_out(notification_id=uuid.UUID(nid))
    async with transaction() as session:
        pages = list(
            (
                await session.scalars(
                    select(DeliveryBatch.low_id)
                    .where(DeliveryBatch.notification_id == uuid.UUID(nid))
                    .order_by(DeliveryBatch.low_id)
                )
            ).all()
        )
        rows = (
            await session.execute(
                select(Delivery.id, Delivery.device_id).where(Delivery.notification_id == uuid.UUID(nid))
            )
        ).all()
    assert len(pages) == 2 and len(rows) == DEVICES
    page_of = {token_of[device_id]: (0 if row_id < pages[1] else 1) for row_id, device_id in rows}
    return nid, pages, page_of


def _send_both(nid: str, pages: list[int], providers) -> asyncio.Future:
    return asyncio.gather(
        *(
            delivery.send_batch(
                notification_id=uuid.UUID(nid), low_id=low_id, providers=providers, badge_source=unread_badges
            )
            for low_id in pages
        )
    )


async def test_the_next_batch_sends_its_first_window_during_the_first_batch_round_trip(
    client, emulator, providers
):
    """Checked on the order of the emulator's requests, not on times (opening the connections
    takes a loaded test run a while): the second batch's first window is at the provider before
    the first batch's third chunk, which waits for the first chunk's answers and write."""
    assert get_settings().send_batches_in_flight == 1
    nid, pages, page_of = await _two_batches(client)
    emulator.faults.update({"latency_ms": LATENCY_MS})
    outcomes = await _send_both(nid, pages, providers)
    emulator.faults.update({"latency_ms": 0})
    records = sorted(emulator.log.find(limit=4 * DEVICES), key=lambda record: record.received_at)
    first_batch = [record.received_at for record in records if page_of[record.token] == 0]
    third_chunk = first_batch[WINDOW]  # the first request after the first batch's window
    early = [record for record in records if record.received_at < third_chunk]
    per_page = [sum(1 for record in early if page_of[record.token] == page) for page in (0, 1)]
    # Before (the next batch claimed once the first had started its last chunk, after two
    # writes): the first batch's window alone, [250, 0].
    assert per_page == [WINDOW, WINDOW], per_page
    assert sum(outcome["sent"] for outcome in outcomes) == DEVICES, outcomes
    notification, deliveries = await load(nid)
    assert notification.status == "completed" and {d.status for d in deliveries} == {"sent"}
    assert len(emulator.log) == DEVICES  # each device once


async def test_a_cancel_without_its_signal_lets_through_one_window_per_batch_at_most(
    client, emulator, providers
):
    """Redis down, or a worker that did not hear the cancel: each batch reads the status again
    (through a chunk's write) before each further chunk, so at most its window of chunks already
    started goes out after the cancel; the worker's two batches together no more than two."""
    nid, pages, page_of = await _two_batches(client)
    emulator.faults.update({"latency_ms": LATENCY_MS})
    sending = _send_both(nid, pages, providers)
    await _until(lambda: len(emulator.log) >= 2 * WINDOW)
    async with transaction() as session:  # a commit with no signal to the workers
        await notifications.cancel(session, notification_id=uuid.UUID(nid), now=clock.utcnow())
    outcomes = await sending
    emulator.faults.update({"latency_ms": 0})
    records = emulator.log.find(limit=4 * DEVICES)
    per_page = [sum(1 for record in records if page_of[record.token] == page) for page in (0, 1)]
    assert per_page == [WINDOW, WINDOW], per_page  # chunks 3 and 4 of either batch never started
    assert sum(outcome["claimed"] for outcome in outcomes) == 2 * WINDOW, outcomes
    notification, deliveries = await load(nid)
    assert (notification.status, notification.sent, notification.cancelled) == (
        "cancelled",
        2 * WINDOW,
        DEVICES - 2 * WINDOW,
    )
    assert sorted({d.status for d in deliveries}) == ["cancelled", "sent"]
