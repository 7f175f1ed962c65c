"""Batch leases (notifications/outbox.py): one worker holds a fan-out page at a time, a worker that
lost its lease cannot overwrite or double-count, and a cancel never strands rows a worker held."""

import datetime as dt
import uuid

from sqlalchemy import select, text

from core import clock
from core.config import get_settings
from core.db import transaction
from notifications import outbox
from notifications import service as notifications
from notifications.delivery import _record
from notifications.models import DeliveryBatch
from notifications.providers.base import Outcome, SendResult
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load
from workers.delivery_jobs import fan_out, purge, reconcile, send_batch


async def _fanned_out(client, worker_ctx, count: int = 3) -> uuid.UUID:
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(count)])
    headers = await central_sender(client)
    nid = uuid.UUID(await broadcast(client, headers))
    await fan_out(worker_ctx, str(nid))
    return nid


async def _claim(nid: uuid.UUID) -> outbox.Claim | None:
    async with transaction() as session:
        return await outbox.claim_most_urgent(
            session,
            notification_id=nid,
            low_id=None,
            priorities=notifications.sharing_queue("high"),
            now=clock.utcnow(),
        )


async def _record_all(claim: outbox.Claim, prefix: str) -> outbox.RecordSummary:
    results = [(d, SendResult.accepted(f"{prefix}-{d.id}")) for d in claim.deliveries]
    async with transaction() as session:
        summary = await outbox.record(
            session,
            notification_id=claim.notification_id,
            expires_at=claim.expires_at,
            results=results,
            now=clock.utcnow(),
        )
        await outbox.settle(session, claim)
    return summary


def _past_the_lease() -> None:
    clock.advance(get_settings().delivery_lease_seconds + 1)


async def _batch(nid: uuid.UUID) -> DeliveryBatch:
    async with transaction() as session:
        query = select(DeliveryBatch).where(DeliveryBatch.notification_id == nid)
        return (await session.execute(query)).scalar_one()


async def test_a_held_batch_is_not_claimed_again_until_its_lease_ends(client, emulator, worker_ctx):
    nid = await _fanned_out(client, worker_ctx)
    first = await _claim(nid)
    assert first is not None and len(first.deliveries) == 3
    assert await _claim(nid) is None  # held
    assert (await send_batch(worker_ctx, str(nid), first.low_id))["claimed"] == 0
    _past_the_lease()
    second = await _claim(nid)  # the first worker is presumed dead
    assert second is not None and second.lease == first.lease + 1
    assert [d.id for d in second.deliveries] == [d.id for d in first.deliveries]


async def test_a_worker_that_lost_its_lease_writes_and_counts_nothing(client, emulator, worker_ctx):
    nid = await _fanned_out(client, worker_ctx)
    late = await _claim(nid)
    assert late is not None
    _past_the_lease()
    current = await _claim(nid)
    assert current is not None
    assert (await _record_all(current, "new")).sent == 3
    # The late worker's answers arrive after all: nothing is overwritten or counted twice.
    stale = await _record_all(late, "late")
    assert (stale.sent, stale.failed, stale.retrying) == (0, 0, 0)
    notification, deliveries = await load(nid)
    assert notification.status == "completed" and notification.sent == 3
    assert {d.provider_message_id for d in deliveries} == {f"new-{d.id}" for d in deliveries}
    assert {d.attempts for d in deliveries} == {1}
    assert (await _batch(nid)).status == "done"


async def test_cancel_leaves_a_held_batch_to_its_worker_which_cancels_what_it_did_not_send(
    client, emulator, worker_ctx
):
    nid = await _fanned_out(client, worker_ctx)
    claim = await _claim(nid)
    assert claim is not None
    async with transaction() as session:
        # The rows of the held batch may be at the provider right now: not cancelled here.
        assert await notifications.cancel(session, notification_id=nid, now=clock.utcnow()) == 0
        assert await notifications.in_flight(session, notification_id=nid, now=clock.utcnow()) == 1
    # The worker sent its first chunk (one push) and stopped there; letting go cancels the rest.
    first = claim.deliveries[0]
    counts, _ = await _record(claim, [(first, SendResult.accepted("m-1"))], last=True, priority="high")
    assert counts["sent"] == 1
    notification, deliveries = await load(nid)
    assert sorted(d.status for d in deliveries) == ["cancelled", "cancelled", "sent"]
    assert (notification.sent, notification.cancelled, notification.status) == (1, 2, "cancelled")
    assert (await _batch(nid)).status == "done"
    async with transaction() as session:
        assert await notifications.in_flight(session, notification_id=nid, now=clock.utcnow()) == 0


async def test_the_reconciler_cancels_what_a_dead_worker_held_of_a_cancelled_notification(
    client, emulator, worker_ctx
):
    nid = await _fanned_out(client, worker_ctx)
    assert await _claim(nid) is not None  # and the worker dies holding it
    async with transaction() as session:
        assert await notifications.cancel(session, notification_id=nid, now=clock.utcnow()) == 0
    assert (await reconcile({}))["cancelled"] == 0  # still leased
    _past_the_lease()
    assert (await reconcile({}))["cancelled"] == 3
    notification, deliveries = await load(nid)
    assert {d.status for d in deliveries} == {"cancelled"} and notification.cancelled == 3
    assert len(emulator.log) == 0


async def test_a_recorded_result_changes_no_indexed_column(owner_engine):
    """Why recording is cheap at a million rows: no index of ``deliveries`` names a column the
    record writes, so PostgreSQL can update rows in place (HOT) without new index entries."""
    written = {"status", "error_code", "provider_message_id", "next_attempt_at", "attempts", "updated_at"}
    async with owner_engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indrelid = 'deliveries'::regclass"
            )
        )
        indexed = {row.attname for row in rows}
        predicates = await conn.execute(
            text(
                "SELECT count(*) FROM pg_index"
                " WHERE indrelid = 'deliveries'::regclass AND indpred IS NOT NULL"
            )
        )
        assert predicates.scalar_one() == 0
    assert indexed and not indexed & written


async def test_purge_removes_the_rows_and_batches_of_long_finished_notifications(
    client, emulator, worker_ctx
):
    old = await _fanned_out(client, worker_ctx, count=2)
    claim = await _claim(old)
    assert claim is not None
    await _record_all(claim, "old")
    clock.advance(31 * 86400)
    recent = await _fanned_out(client, worker_ctx, count=1)
    purged = await purge({})
    assert purged["deliveries"] == 2
    async with transaction() as session:
        batches = (await session.execute(select(DeliveryBatch.notification_id))).scalars().all()
    assert batches == [recent]
    assert len((await load(recent))[1]) == 3 and (await load(old))[1] == []


async def _write_one(
    claim: outbox.Claim, delivery: outbox.ClaimedDelivery, result: SendResult, *, later: float = 0.0
) -> None:
    """One row's answer, written as the claim's sender writes a chunk (renewing its lease)."""
    async with transaction() as session:
        await outbox.record(
            session,
            notification_id=claim.notification_id,
            expires_at=claim.expires_at,
            results=[(delivery, result)],
            now=clock.utcnow() + dt.timedelta(seconds=later),
            claim=claim,
        )


async def test_each_chunk_written_renews_the_senders_lease(client, emulator, worker_ctx):
    # A batch whose chunks wait for pacing permits or a slow provider may take longer than the
    # lease in all; as long as each chunk is written within it, the batch stays its sender's.
    nid = await _fanned_out(client, worker_ctx)
    claim = await _claim(nid)
    assert claim is not None
    lease = get_settings().delivery_lease_seconds
    first, second, third = claim.deliveries
    for delivery in (first, second):
        clock.advance(lease - 1)  # the write comes just before the lease would end
        await _write_one(claim, delivery, SendResult.accepted(f"m-{delivery.id}"))
    clock.advance(2)  # past the claim's own lease, by twice its length
    assert await _claim(nid) is None  # still held
    _past_the_lease()  # its sender wrote nothing for a whole lease: presumed dead
    taken = await _claim(nid)
    assert taken is not None and [d.id for d in taken.deliveries] == [third.id]
    # The dead sender's late write renews nothing: the lease is the new holder's.
    late_until = (await _batch(nid)).leased_until
    await _write_one(claim, third, SendResult.accepted("late"), later=30)
    assert (await _batch(nid)).leased_until == late_until


async def test_a_write_after_the_batch_was_settled_leases_nothing(client, emulator, worker_ctx):
    nid = await _fanned_out(client, worker_ctx, count=2)
    claim = await _claim(nid)
    assert claim is not None
    first, second = claim.deliveries
    await _write_one(claim, first, SendResult(Outcome.RETRY, error_code="unavailable", retry_after=60))
    async with transaction() as session:
        await outbox.settle(session, claim)
    assert (await _batch(nid)).leased_until is None
    # A drain's write of the other row after the settle (same lease number) leaves it released.
    await _write_one(claim, second, SendResult.accepted("m-2"))
    batch = await _batch(nid)
    assert batch.leased_until is None and batch.status == "open"


async def test_a_provider_that_raises_fails_its_own_requests_not_the_batch(
    client, emulator, worker_ctx, monkeypatch
):
    # One provider raising out of ``send`` (here APNs, as h2 did on a connection a GOAWAY had
    # ended) used to end the send job: the FCM answers of the same chunk were never written, and
    # the batch was sent again once its lease ran out. Now its own requests are retries, the
    # rest is written, and the batch is let go.
    from notifications.providers import apns_prepared

    async def raises(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a state the client did not expect")

    monkeypatch.setattr(apns_prepared, "send_prepared", raises)
    await register_devices([("apns", f"{i:064x}", "vi") for i in range(2)])
    nid = await _fanned_out(client, worker_ctx, count=3)
    first = await _batch(nid)
    summary = await send_batch(worker_ctx, str(nid), first.low_id)
    assert summary["claimed"] == 5
    _, deliveries = await load(nid)
    assert sorted((d.provider, d.status) for d in deliveries) == [
        ("apns", "retrying"),
        ("apns", "retrying"),
        ("fcm", "sent"),
        ("fcm", "sent"),
        ("fcm", "sent"),
    ]
    assert {d.error_code for d in deliveries if d.provider == "apns"} == {"error:RuntimeError"}
    assert (await _batch(nid)).leased_until is None  # let go, not left to its lease
    assert len(emulator.log.find(provider="fcm")) == 3
