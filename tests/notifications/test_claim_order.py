"""Which batch a send job claims (notifications/outbox.py ``claim_most_urgent``): its own, unless a
more urgent one of its queue is due — an emergency's, then a new notification's first page. The
order itself, step by step, without workers; tests/notifications/test_urgent_first.py shows it
with real workers and the emulator."""

import uuid

from sqlalchemy import select

from core import clock
from core.db import transaction
from notifications import outbox, urgent_role
from notifications.models import DeliveryBatch
from notifications.providers.base import SendResult
from notifications.service import sharing_queue
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, notification_body, release_approved
from workers.delivery_jobs import fan_out


async def _pages(nid: str) -> list[DeliveryBatch]:
    async with transaction() as session:
        query = select(DeliveryBatch).where(DeliveryBatch.notification_id == uuid.UUID(nid))
        return list((await session.execute(query.order_by(DeliveryBatch.low_id))).scalars())


async def _claim_for(nid: str, low_id: int | None, priority: str = "high") -> outbox.Claim | None:
    """What the send job queued for that page would claim."""
    async with transaction() as session:
        return await outbox.claim_most_urgent(
            session,
            notification_id=uuid.UUID(nid),
            low_id=low_id,
            priorities=sharing_queue(priority),
            now=clock.utcnow(),
        )


async def _send(claim: outbox.Claim) -> None:
    async with transaction() as session:
        results = [(d, SendResult.accepted(f"m-{d.id}")) for d in claim.deliveries]
        await outbox.record(
            session,
            notification_id=claim.notification_id,
            expires_at=claim.expires_at,
            results=results,
            now=clock.utcnow(),
        )
        await outbox.settle(session, claim)


async def _targeted(client, headers, worker_ctx, device_ids: list[uuid.UUID], priority: str) -> str:
    body = notification_body(audience={"devices": [str(d) for d in device_ids]}, priority=priority)
    nid = await release_approved(client, headers, body)
    await fan_out(worker_ctx, nid)
    return nid


async def test_a_broadcasts_send_jobs_take_new_first_pages_and_emergencies_first(
    client, emulator, worker_ctx
):
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(1_200)])
    headers = await central_sender(client)
    big = await broadcast(client, headers)
    await fan_out(worker_ctx, big)
    first, second, third = await _pages(big)
    # The broadcast is under way: its first page went out.
    claim = await _claim_for(big, first.low_id)
    assert claim is not None and claim.batch_id == first.id
    await _send(claim)

    urgent = await _targeted(client, headers, worker_ctx, devices[:2], "high")
    emergency = await _targeted(client, headers, worker_ctx, devices[2:4], "emergency")
    normal = await _targeted(client, headers, worker_ctx, devices[4:6], "normal")
    (urgent_page,) = await _pages(urgent)
    (emergency_page,) = await _pages(emergency)
    (normal_page,) = await _pages(normal)

    # The job queued for the broadcast's second page takes the emergency, the next one the new
    # high push's first page, though both were queued after the broadcast's pages.
    taken = await _claim_for(big, second.low_id)
    assert taken is not None and taken.batch_id == emergency_page.id
    taken = await _claim_for(big, third.low_id)
    assert taken is not None and (taken.notification_id, taken.batch_id) == (
        uuid.UUID(urgent),
        urgent_page.id,
    )
    # The jobs of those two find their pages taken and send the broadcast's pages, in order.
    taken = await _claim_for(emergency, emergency_page.low_id, "emergency")
    assert taken is not None and taken.batch_id == second.id
    taken = await _claim_for(urgent, urgent_page.low_id)
    assert taken is not None and taken.batch_id == third.id
    # Nothing is left for a high-queue job: the normal push is the bulk queue's...
    assert await _claim_for(big, None) is None
    # ...where its own job sends it.
    taken = await _claim_for(normal, normal_page.low_id, "normal")
    assert taken is not None and taken.batch_id == normal_page.id


async def test_a_new_broadcast_gets_its_first_page_ahead_and_then_waits_its_turn(
    client, emulator, worker_ctx
):
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(1_000)])
    headers = await central_sender(client)
    old = await broadcast(client, headers)
    await fan_out(worker_ctx, old)
    old_first, old_second = await _pages(old)
    claim = await _claim_for(old, old_first.low_id)
    assert claim is not None
    await _send(claim)

    new = await broadcast(client, headers)
    await fan_out(worker_ctx, new)
    new_first, new_second = await _pages(new)
    # Its first page goes ahead of the old broadcast's remaining page...
    taken = await _claim_for(old, old_second.low_id)
    assert taken is not None and taken.batch_id == new_first.id
    # ...its second does not: a job finding its own page taken sends the most overdue page.
    taken = await _claim_for(new, new_first.low_id)
    assert taken is not None and taken.batch_id == old_second.id
    taken = await _claim_for(new, new_second.low_id)
    assert taken is not None and taken.batch_id == new_second.id


async def test_while_an_urgent_worker_serves_the_queue_a_young_first_page_is_left_to_it(
    client, emulator, worker_ctx, monkeypatch
):
    """notifications/urgent_role.py: the ordinary workers' claims skip another notification's
    first page for the hand-over while an urgent worker is alive; their own page they still take,
    and past the hand-over everything is theirs again."""
    devices = await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(1_002)])
    headers = await central_sender(client)
    big = await broadcast(client, headers)
    await fan_out(worker_ctx, big)
    first, second, third = await _pages(big)
    claim = await _claim_for(big, first.low_id)
    assert claim is not None and claim.batch_id == first.id
    await _send(claim)
    urgent = await _targeted(client, headers, worker_ctx, devices[-2:], "high")
    (urgent_page,) = await _pages(urgent)

    async def claim_as_ordinary(nid: str, low_id: int | None) -> outbox.Claim | None:
        now = clock.utcnow()
        async with transaction() as session:
            return await outbox.claim_most_urgent(
                session,
                notification_id=uuid.UUID(nid),
                low_id=low_id,
                priorities=sharing_queue("high"),
                now=now,
                leave_first_after=urgent_role.leave_first_after(now),
            )

    assert urgent_role.leave_first_after(clock.utcnow()) is None  # no urgent worker: as before
    try:
        urgent_role.note_presence(present=True)
        # The broadcast's job sends its own page, not the new push's first page...
        taken = await claim_as_ordinary(big, second.low_id)
        assert taken is not None and taken.batch_id == second.id
        taken = await claim_as_ordinary(big, None)
        assert taken is not None and taken.batch_id == third.id
        # ...and a job with nothing of its own left finds nothing else due: the page is left.
        assert await claim_as_ordinary(big, None) is None
        # The page's own job (after the hand-over, workers/arq_worker.py) takes its own page.
        monkeypatch.setattr(urgent_role, "HANDOVER_SECONDS", 3600.0)
        taken = await claim_as_ordinary(urgent, urgent_page.low_id)
        assert taken is not None and taken.batch_id == urgent_page.id
        await _send(taken)
        # Past the hand-over first pages are everyone's again (a hand-over of zero: at once).
        monkeypatch.setattr(urgent_role, "HANDOVER_SECONDS", 0.0)
        other = await _targeted(client, headers, worker_ctx, devices[-4:-2], "high")
        (other_page,) = await _pages(other)
        taken = await claim_as_ordinary(big, None)
        assert taken is not None and taken.batch_id == other_page.id
    finally:
        urgent_role.note_presence(present=False)
