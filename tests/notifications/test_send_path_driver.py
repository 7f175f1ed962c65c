"""The send path's statements on a pooled connection without a session (core/raw_sql.py
``pooled_driver``): the claim, each chunk's write and the settle. Their failures must be
classified as a session's are, so that a chunk's write is still written again after a lock wait or
a lost connection (core/db_retry.py) instead of being left for the lease to send again, and the
write still returns the notification's status read under its lock (a cancel stops the batch)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core import clock
from core.db import configure_engine, get_engine, is_bounded_wait, lost_connection, make_engine, transaction
from core.raw_sql import RawStatement, pooled_driver
from notifications import delivery, outbox
from notifications import service as notifications
from notifications.providers.base import Outcome, SendResult
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load
from workers.delivery_jobs import fan_out

_PID = RawStatement("SELECT pg_backend_pid() AS pid")
_LOCK_ROW = RawStatement("SELECT id FROM notifications WHERE id = :nid FOR UPDATE NOWAIT")
_LOCK_TIMEOUT = RawStatement("SELECT set_config('lock_timeout', :ms, false) AS set")


async def _one_connection(database_url: str) -> None:
    """The app's engine with a single pooled connection, so that a test knows which one the next
    checkout gets (or that a new one replaced it)."""
    old = get_engine()
    configure_engine(make_engine(database_url, pool_size=1, max_overflow=0))
    await old.dispose()


async def _pid() -> int:
    async with pooled_driver() as driver:
        row = await _PID.fetchrow(driver, {})
    assert row is not None
    pid: int = row["pid"]
    return pid


async def _fanned_out(client, worker_ctx, count: int) -> uuid.UUID:
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi") for _ in range(count)])
    nid = uuid.UUID(await broadcast(client, await central_sender(client)))
    await fan_out(worker_ctx, str(nid))
    return nid


async def _claim(nid: uuid.UUID) -> outbox.Claim:
    claim = await delivery.lease_batch(nid, None, notifications.sharing_queue("high"), first_only=False)
    assert claim is not None
    return claim


async def _hold_row(owner_engine, nid: uuid.UUID, held: asyncio.Event, release: asyncio.Event) -> None:
    async with owner_engine.begin() as conn:
        await conn.execute(text("SELECT id FROM notifications WHERE id = :nid FOR UPDATE"), {"nid": nid})
        held.set()
        await release.wait()


async def test_driver_failures_are_classified_as_a_sessions_are(
    client, worker_ctx, owner_engine, database_url
):
    nid = await _fanned_out(client, worker_ctx, 1)
    await _one_connection(database_url)
    pid = await _pid()

    # A lock wait (NOWAIT: at once; lock_timeout gives the same SQLSTATE) is a bounded wait; the
    # connection is sound and goes back to the pool.
    held, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_hold_row(owner_engine, nid, held, release))
    await held.wait()
    with pytest.raises(DBAPIError) as raised:
        async with pooled_driver() as driver:
            await _LOCK_ROW.fetch(driver, {"nid": nid})
    assert raised.value.orig.sqlstate == "55P03"  # type: ignore[union-attr]
    assert is_bounded_wait(raised.value) and not lost_connection(raised.value)
    release.set()
    await holder
    assert await _pid() == pid

    # A connection cut under the statement is a lost connection; the pool replaces it.
    async with pooled_driver() as driver:
        async with owner_engine.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as raised:
            await _PID.fetch(driver, {})
        assert lost_connection(raised.value)
        # The same checkout is no use any more, and says so the same way.
        with pytest.raises(DBAPIError) as again:
            await _PID.fetch(driver, {})
        assert lost_connection(again.value)
    assert await _pid() != pid

    # Cancelled mid-statement: the connection may be mid-protocol, so it is not handed back.
    pid = await _pid()

    async def sleep() -> None:
        async with pooled_driver() as driver:
            await RawStatement("SELECT pg_sleep(5)").fetch(driver, {})

    sleeping = asyncio.ensure_future(sleep())
    await asyncio.sleep(0.3)
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    assert await _pid() != pid


async def test_a_checkout_the_server_refuses_is_raised_as_a_sessions_is(database_url):
    old = get_engine()
    # Nothing listens on port 1: the socket's own error, a bounded wait (the transports' 503).
    configure_engine(make_engine("postgresql+asyncpg://chuong@127.0.0.1:1/none", pool_size=1, max_overflow=0))
    await old.dispose()
    with pytest.raises(ConnectionRefusedError) as refused:
        async with pooled_driver():
            pass
    assert is_bounded_wait(refused.value)
    # A server that answers with an error: wrapped as SQLAlchemy's, as a session's checkout is.
    configure_engine(make_engine(database_url.rsplit("/", 1)[0] + "/no_such_database", pool_size=1))
    with pytest.raises(DBAPIError) as wrapped:
        async with pooled_driver():
            pass
    assert wrapped.value.orig.sqlstate == "3D000"  # type: ignore[union-attr]
    assert not is_bounded_wait(wrapped.value) and not lost_connection(wrapped.value)


async def test_a_chunks_write_on_the_driver_is_written_again_after_a_lock_wait_or_a_lost_connection(
    client, worker_ctx, owner_engine, database_url, monkeypatch
):
    nid = await _fanned_out(client, worker_ctx, 3)
    claim = await _claim(nid)
    first, second, third = claim.deliveries
    await _one_connection(database_url)
    async with pooled_driver() as driver:  # this connection's lock waits end after 200 ms
        await _LOCK_TIMEOUT.fetch(driver, {"ms": "200"})
    tries: list[int] = []
    on_driver = outbox.record_prepared

    async def counted(driver, prepared):  # type: ignore[no-untyped-def]
        tries.append(1)
        return await on_driver(driver, prepared)

    async def through_a_session(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a chunk with no dead token is written without a session")

    monkeypatch.setattr(outbox, "record_prepared", counted)
    monkeypatch.setattr(outbox, "record", through_a_session)

    # The notification's row held past the write's lock timeout: the write meets 55P03, is tried
    # again and gets through once the row is let go; the status comes from the write.
    held, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_hold_row(owner_engine, nid, held, release))
    await held.wait()
    asyncio.get_running_loop().call_later(0.8, release.set)
    counts, status = await delivery._record(
        claim, [(first, SendResult.accepted("m-1"))], last=False, priority="high"
    )
    await holder
    assert (counts["sent"], status) == (1, "sending")
    assert len(tries) > 1

    # The connection cut while the write waits for the row: written again on a new connection.
    tries.clear()
    pid = await _pid()
    held, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.ensure_future(_hold_row(owner_engine, nid, held, release))
    await held.wait()
    async with pooled_driver() as driver:  # the new connection's waits may last (5 s default)
        await _LOCK_TIMEOUT.fetch(driver, {"ms": "5000"})
    writing = asyncio.ensure_future(
        delivery._record(claim, [(second, SendResult.accepted("m-2"))], last=False, priority="high")
    )
    async with owner_engine.connect() as conn:
        for _ in range(100):
            waiting = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid AND wait_event_type = 'Lock'"),
                {"pid": pid},
            )
            if waiting:
                break
            await asyncio.sleep(0.05)
        assert waiting, "the write never waited for the row"
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await asyncio.sleep(0.3)
    release.set()
    await holder
    counts, status = await writing
    assert (counts["sent"], status) == (1, "sending")
    assert len(tries) == 2
    assert await _pid() != pid

    # The last chunk: its write and the settle on the driver; counted once each.
    counts, status = await delivery._record(
        claim, [(third, SendResult.accepted("m-3"))], last=True, priority="high"
    )
    assert (counts["sent"], status) == (1, "completed")
    notification, deliveries = await load(nid)
    assert notification.sent == 3 and notification.status == "completed"
    assert {d.attempts for d in deliveries} == {1} and {d.status for d in deliveries} == {"sent"}
    async with transaction() as session:
        batch = (
            await session.execute(
                text("SELECT status, leased_until FROM delivery_batches WHERE notification_id = :nid"),
                {"nid": nid},
            )
        ).one()
    assert tuple(batch) == ("done", None)


async def test_the_write_on_the_driver_reads_a_cancel_and_letting_go_cancels_the_rest(
    client, worker_ctx, emulator
):
    nid = await _fanned_out(client, worker_ctx, 3)
    claim = await _claim(nid)
    first, second, _ = claim.deliveries
    counts, status = await delivery._record(
        claim, [(first, SendResult.accepted("m-1"))], last=False, priority="high"
    )
    assert (counts["sent"], status) == (1, "sending")
    async with transaction() as session:
        await notifications.cancel(session, notification_id=nid, now=clock.utcnow())
    # The next chunk's write reads the cancel under the row's lock: the pipeline starts no more.
    counts, status = await delivery._record(
        claim, [(second, SendResult.accepted("m-2"))], last=False, priority="high"
    )
    assert (counts["sent"], status) == (1, "cancelled")
    assert not delivery._still_sending(nid, status, claim.expires_at)
    await delivery._let_go_now(claim, priority="high", status=status)
    notification, deliveries = await load(nid)
    assert sorted(d.status for d in deliveries) == ["cancelled", "sent", "sent"]
    assert (notification.sent, notification.cancelled, notification.status) == (2, 1, "cancelled")


async def test_a_last_write_on_the_driver_with_rows_left_open_queues_their_retry(
    client, worker_ctx, emulator, monkeypatch
):
    nid = await _fanned_out(client, worker_ctx, 2)
    claim = await _claim(nid)
    first, second = claim.deliveries
    queued: list[tuple[str, str | None]] = []

    async def enqueue(jobs):  # type: ignore[no-untyped-def]
        queued.extend((job.name, job.job_id) for job in jobs)

    monkeypatch.setattr("core.jobs._enqueuer", enqueue)
    results = [
        (first, SendResult.accepted("m-1")),
        (second, SendResult(Outcome.RETRY, error_code="UNAVAILABLE")),
    ]
    counts, status = await delivery._record(claim, results, last=True, priority="high")
    assert (counts["sent"], counts["retrying"], status) == (1, 1, "sending")
    assert [name for name, _ in queued] == ["send_batch"]
    assert (queued[0][1] or "").startswith(f"retry:{nid}:{claim.low_id}:")
    _, deliveries = await load(nid)
    assert sorted(d.status for d in deliveries) == ["retrying", "sent"]


def test_a_writes_rows_are_what_decide_decides_for_each_kind_of_result():
    """``prepare_record`` writes an accepted row without a decision object of its own: the rows
    must still be exactly ``_decide``'s, for every kind of result."""
    now = clock.utcnow()
    expires_at = now + dt.timedelta(hours=1)
    results = [
        SendResult.accepted("m-1"),
        SendResult(Outcome.ACCEPTED, message_id="m-2", error_code="note"),
        SendResult(Outcome.INVALID_TOKEN, error_code="UNREGISTERED"),
        SendResult(Outcome.INVALID_TOKEN, error_code="device_retired"),
        SendResult(Outcome.RETRY, error_code="UNAVAILABLE", retry_after=30),
        SendResult(Outcome.RETRY, error_code="rate_limited", retry_after=5, attempted=False),
        SendResult(Outcome.FAILED, error_code="INVALID_ARGUMENT"),
    ]
    pairs = [
        (outbox.ClaimedDelivery(i + 1, uuid.uuid4(), "fcm", "vi", i % 3, "token", None), result)
        for i, result in enumerate(results)
    ]
    prepared = outbox.prepare_record(
        notification_id=uuid.uuid4(), expires_at=expires_at, results=pairs, now=now
    )
    assert prepared is not None and prepared.retires_devices
    params = prepared.params
    columns = ("ids", "seen_attempts", "attempts", "statuses", "error_codes", "message_ids", "next_attempts")
    rows = list(zip(*(params[column] for column in columns), strict=True))
    for row, (claimed, result) in zip(rows, pairs, strict=True):
        decision = outbox._decide(claimed, result, now=now, expires_at=expires_at)
        assert row == (
            claimed.id,
            claimed.attempts,
            decision.attempts,
            decision.status,
            decision.error_code,
            decision.message_id,
            decision.next_attempt_at,
        )
    assert prepared.params["requested"] is True
    # Only local answers: no provider request to stamp.
    local = [(pairs[3][0], results[3]), (pairs[5][0], results[5])]
    only_local = outbox.prepare_record(
        notification_id=uuid.uuid4(), expires_at=expires_at, results=local, now=now
    )
    assert only_local is not None and only_local.params["requested"] is False
