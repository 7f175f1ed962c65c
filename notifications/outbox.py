"""The delivery outbox: claim due work, record provider results, schedule retries.

Work is claimed a batch at a time: each fan-out page of deliveries has a ``delivery_batches``
row, and a send job leases that row (``leased_until``, one short statement that also reads the
page's due rows and their devices' current tokens), so no transaction stays open across network
calls and no delivery row is written until its result is known. A worker killed mid-batch
leaves the lease to run out; the reconciler then queues the batch again, so at most one batch is
sent twice (at-least-once to the provider). A result is written only over a row still due at the
attempt count the sender saw, so a late worker never overwrites a newer attempt's result and the
counters count each row once.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import Boolean, CursorResult, Select, bindparam, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.after_commit import committing
from core.config import get_settings
from core.db import allow_long_statements
from core.pubsub import publish_after_commit, publish_committed
from core.raw_sql import PooledDriver, RawStatement
from devices import service as devices
from notifications.channels import progress_channel
from notifications.models import Delivery, DeliveryBatch, Notification
from notifications.providers.base import Outcome, SendResult

MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 900.0
DUE_STATUSES = ("pending", "retrying")
# Results made up locally, without a provider request (see dispatch.py and providers/paced.py).
LOCAL_CODES = ("device_retired", "rate_limited", "cancelled")


class ClaimedDelivery(NamedTuple):
    """One due row of a claimed batch. A tuple: a batch makes 500 of them, and a frozen
    dataclass's ``__init__`` costs several times a tuple's."""

    id: int
    device_id: uuid.UUID
    provider: str
    language: str
    attempts: int  # attempts before this one
    token: str | None  # None when the device was retired after the fan-out
    apns_environment: str | None


@dataclass(frozen=True)
class Claim:
    """A leased batch: its rows that were due, and what settling it needs."""

    notification_id: uuid.UUID
    batch_id: int
    lease: int
    low_id: int
    high_id: int
    expires_at: dt.datetime
    deliveries: list[ClaimedDelivery]


def lease() -> dt.timedelta:
    """Longer than the send job's timeout (60 s), so a live batch never loses its lease."""
    return dt.timedelta(seconds=get_settings().delivery_lease_seconds)


# _PAGE_NOTE: a batch's rows are read through the primary key range alone, and only then
# filtered by notification. Given ``notification_id = $1 AND id BETWEEN $2 AND $3`` the
# prepared statement's generic plan ANDs the primary key with a bitmap of the notification's
# entries in uq_deliveries_notification_device — every row of the notification, 1M of them at a
# million devices, for each 500-row batch. ``OFFSET 0`` keeps the range scan a subquery of its own.


# How far back, in batch rows, a claim looks for more urgent work than its own (see below).
WINDOW = 1000


def _claim_most_urgent_sql(*, ranged: bool, first_only: bool = False) -> str:
    # What a send job claims (delivery.py): its own batch (the page that queued it or, without
    # one, its notification's most overdue batch) unless something more urgent of its queue's
    # priorities is due and nobody holds it. More urgent is, in this order:
    #   1. emergency before high (the high queue carries both);
    #   2. a notification's first page before its other pages and everyone else's: a new
    #      notification's first 500 devices go out with the next batch any worker claims, however
    #      many of a broadcast's pages were queued before it; its other pages queue up as before;
    #   3. then the job's own batch, then the most overdue.
    # So a broadcast's send job takes a new notification's first page, and that page's own job,
    # finding it taken, takes the broadcast's page in turn: send jobs are wake-ups, each claims one
    # batch, every batch has a job of its own. Others' batches are looked for among the newest
    # WINDOW batch rows only (a range of the primary key: cost per claim, whatever the table's
    # size); a first page older than that is claimed by its own job. Ties go to the job's own
    # batch, so a burst of new notifications (tracking reminders: one page each) is claimed page
    # by page, and a broadcast's pages in order.
    # ``first_only``: the first-page lane (delivery.py) claims nothing but first pages, so what a
    # worker holds beside the batch it is starting is one first page at most.
    # ``leave_first_after``: while an urgent worker serves the queue (notifications/urgent_role.py)
    # another notification's first page written after it is left to that worker; NULL leaves
    # nothing (compared with 'infinity', so the condition is false rather than NULL).
    own = "notification_id = :nid AND low_id = :low" if ranged else "notification_id = :nid"
    mine = "b.notification_id = :nid AND b.low_id = :low" if ranged else "b.notification_id = :nid"
    first = """NOT EXISTS (SELECT 1 FROM delivery_batches AS e
                            WHERE e.notification_id = b.notification_id AND e.low_id < b.low_id)"""
    only_first = f"AND {first}" if first_only else ""
    return f"""
        WITH candidates AS (
            SELECT id FROM delivery_batches
            WHERE id > (SELECT coalesce(max(id), 0) FROM delivery_batches) - :window AND status = 'open'
            UNION
            (SELECT id FROM delivery_batches WHERE {own} AND status = 'open'
             ORDER BY next_attempt_at LIMIT 1)
        ), pick AS (
            SELECT b.id, n.expires_at
            FROM candidates JOIN delivery_batches AS b ON b.id = candidates.id
            JOIN notifications AS n ON n.id = b.notification_id
            WHERE b.status = 'open' AND b.next_attempt_at <= :now
              AND (b.leased_until IS NULL OR b.leased_until < :now)
              AND n.priority = ANY(CAST(:priorities AS text[]))
              AND n.status NOT IN ('completed', 'expired', 'cancelled') AND n.expires_at > :now
              {only_first}
              AND NOT (b.created_at > coalesce(CAST(:leave_first_after AS timestamptz), 'infinity')
                       AND NOT ({mine}) AND {first})
            ORDER BY n.priority = 'emergency' DESC,
                     {first} DESC,
                     ({mine}) DESC,
                     b.next_attempt_at, b.id
            LIMIT 1
            FOR UPDATE OF b SKIP LOCKED
        ), batch AS (
            UPDATE delivery_batches AS b
            SET leased_until = :until, lease = b.lease + 1
            FROM pick WHERE b.id = pick.id
            RETURNING b.id, b.notification_id, b.lease, b.low_id, b.high_id, pick.expires_at
        )
        SELECT batch.id AS batch_id, batch.notification_id, batch.lease, batch.low_id, batch.high_id,
               batch.expires_at, d.id, d.device_id, d.provider, d.language, d.attempts,
               devices.token, devices.apns_environment
        FROM batch
        LEFT JOIN LATERAL (
            SELECT * FROM (
                SELECT id, notification_id, device_id, provider, language, attempts, status, next_attempt_at
                FROM deliveries WHERE id BETWEEN batch.low_id AND batch.high_id
                OFFSET 0  -- see _PAGE_NOTE
            ) AS page
            WHERE page.notification_id = batch.notification_id AND page.status IN ('pending', 'retrying')
              AND page.next_attempt_at <= :now
        ) AS d ON true
        LEFT JOIN devices ON devices.id = d.device_id AND devices.invalidated_at IS NULL
        ORDER BY d.id
        """  # noqa: S608 - the variants are fixed strings, every value is a bind parameter


# On the session's asyncpg connection (core/raw_sql.py): one statement, which commits by itself
# unless the caller's transaction has begun.
_CLAIM_MOST_URGENT_SQL = RawStatement(_claim_most_urgent_sql(ranged=False))
_CLAIM_MOST_URGENT_PAGE_SQL = RawStatement(_claim_most_urgent_sql(ranged=True))
_CLAIM_FIRST_PAGE_SQL = RawStatement(_claim_most_urgent_sql(ranged=True, first_only=True))


async def claim_most_urgent(
    where: AsyncSession | PooledDriver,
    *,
    notification_id: uuid.UUID,
    low_id: int | None,
    priorities: Sequence[str],
    now: dt.datetime,
    first_only: bool = False,
    leave_first_after: dt.datetime | None = None,
) -> Claim | None:
    """Lease a due batch and read its due rows: the job's own (the page of ``notification_id``
    starting at ``low_id`` or, without one, its most overdue), unless a more urgent one of a
    live notification of ``priorities`` is due (``_claim_most_urgent_sql``). None when neither
    is due and free. ``first_only`` (with a ``low_id``): a notification's first page or nothing,
    the job's own first. ``leave_first_after``: other notifications' first pages written after
    it are not taken (they are an urgent worker's, notifications/urgent_role.py)."""
    if first_only and low_id is None:
        raise ValueError("the first-page lane claims a page: low_id is required")
    params: dict[str, object] = {
        "nid": notification_id,
        "priorities": list(priorities),
        "now": now,
        "until": now + lease(),
        "window": WINDOW,
        "leave_first_after": leave_first_after,
    }
    if low_id is not None:
        params["low"] = low_id
    if first_only:
        sql = _CLAIM_FIRST_PAGE_SQL
    else:
        sql = _CLAIM_MOST_URGENT_SQL if low_id is None else _CLAIM_MOST_URGENT_PAGE_SQL
    rows = await sql.fetch(where, params)
    if not rows:
        return None
    first = rows[0]
    # Columns 6–12 are a ClaimedDelivery's fields in order (a batch with no due row has one row
    # of NULLs there).
    make = ClaimedDelivery._make
    return Claim(
        notification_id=first["notification_id"],
        batch_id=first["batch_id"],
        lease=first["lease"],
        low_id=first["low_id"],
        high_id=first["high_id"],
        expires_at=first["expires_at"],
        deliveries=[make(row[6:]) for row in rows if row[6] is not None],
    )


def retry_delay(attempts: int, retry_after: float | None, *, rng: random.Random | None = None) -> float:
    """Exponential back-off with jitter; a provider's Retry-After is a floor, never shortened."""
    ceiling = min(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)
    jittered = (rng or random).uniform(ceiling / 2, ceiling)
    return max(jittered, retry_after or 0.0)


@dataclass
class RecordSummary:
    sent: int = 0
    invalid: int = 0
    failed: int = 0
    retrying: int = 0
    status: str | None = None  # the notification's, after this record (``completed`` when it finished)


class _Decision(NamedTuple):
    status: str
    error_code: str | None
    attempts: int  # after this one (a pacing hand-back does not count)
    message_id: str | None = None
    next_attempt_at: dt.datetime | None = None


def _decide(
    delivery: ClaimedDelivery, result: SendResult, *, now: dt.datetime, expires_at: dt.datetime
) -> _Decision:
    attempts = delivery.attempts + 1
    if result.outcome is Outcome.ACCEPTED:
        return _Decision("sent", result.error_code, attempts, result.message_id)
    if result.outcome is Outcome.INVALID_TOKEN:
        return _Decision("invalid", result.error_code, attempts)
    if result.outcome is Outcome.RETRY:
        if not result.attempted:
            # Held back before the provider (pacing): only the TTL bounds it, and it does not use
            # up an attempt.
            next_at = now + dt.timedelta(seconds=max(result.retry_after or 0.0, 1.0))
            if next_at >= expires_at:
                return _Decision("failed", f"{result.error_code or 'retry'}:gave_up"[:64], attempts - 1)
            return _Decision("retrying", result.error_code, attempts - 1, next_attempt_at=next_at)
        next_at = now + dt.timedelta(seconds=retry_delay(attempts, result.retry_after))
        if attempts >= MAX_ATTEMPTS or next_at >= expires_at:
            return _Decision("failed", f"{result.error_code or 'retry'}:gave_up"[:64], attempts)
        return _Decision("retrying", result.error_code, attempts, next_attempt_at=next_at)
    return _Decision("failed", result.error_code, attempts)


def from_provider(result: SendResult) -> bool:
    """Did this result come from a provider request (as opposed to being decided locally)?"""
    code = result.error_code or ""
    return code not in LOCAL_CODES and not code.startswith("no_provider:")


# One statement per chunk of results: write the rows, count what was written into the
# notification's counters, stamp its first/last provider request times, and finish it once the
# counters show every targeted row settled (constant cost per chunk; ``finish_if_done`` is the
# exact backstop, e.g. when a deleted device took its row with it). A row is written only if it
# is still due at the attempt count the sender saw: a late worker whose lease ran out and whose
# batch was sent again cannot overwrite the newer result, and nothing is counted twice.
# The same statement renews the sender's lease on the batch (``renewed``; a data-modifying WITH
# runs whether or not it is read), so a live sender keeps its batch however long its chunks wait
# for pacing permits or a slow provider: only the time between two of its writes must stay under
# the lease. It renews only a lease that is still its own (``lease`` unchanged) and still held
# (not settled).
_RECORD_TEXT = """
    WITH renewed AS (
        UPDATE delivery_batches SET leased_until = :until
        WHERE id = :batch AND lease = :lease AND leased_until IS NOT NULL
    ), r AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:seen_attempts AS integer[]), CAST(:attempts AS integer[]),
            CAST(:statuses AS text[]), CAST(:error_codes AS text[]), CAST(:message_ids AS text[]),
            CAST(:next_attempts AS timestamptz[])
        ) AS r(id, seen_attempts, attempts, status, error_code, message_id, next_attempt_at)
    ), written AS (
        UPDATE deliveries AS d
        SET status = r.status,
            error_code = r.error_code,
            provider_message_id = COALESCE(r.message_id, d.provider_message_id),
            next_attempt_at = COALESCE(r.next_attempt_at, d.next_attempt_at),
            attempts = r.attempts,
            updated_at = :now
        FROM r
        WHERE d.id = r.id AND d.attempts = r.seen_attempts AND d.status IN ('pending', 'retrying')
        RETURNING d.status, d.device_id
    ), counts AS (
        SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
               count(*) FILTER (WHERE status = 'invalid') AS invalid,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'retrying') AS retrying,
               array_agg(device_id) FILTER (WHERE status = 'invalid') AS dead
        FROM written
    ), counted AS (
        UPDATE notifications AS n
        SET sent = n.sent + c.sent,
            invalid = n.invalid + c.invalid,
            failed = n.failed + c.failed,
            first_request_at = CASE WHEN :requested THEN COALESCE(n.first_request_at, :now)
                                    ELSE n.first_request_at END,
            last_request_at = CASE WHEN :requested THEN GREATEST(COALESCE(n.last_request_at, :now), :now)
                                   ELSE n.last_request_at END,
            status = CASE WHEN n.status = 'sending' AND n.fanout_done_at IS NOT NULL
                           AND n.sent + c.sent + n.invalid + c.invalid + n.failed + c.failed >= n.targeted
                          THEN 'completed' ELSE n.status END,
            completed_at = CASE WHEN n.status = 'sending' AND n.fanout_done_at IS NOT NULL
                           AND n.sent + c.sent + n.invalid + c.invalid + n.failed + c.failed >= n.targeted
                          THEN :now ELSE n.completed_at END
        FROM counts AS c
        WHERE n.id = :nid
        RETURNING n.status
    )
    SELECT c.sent, c.invalid, c.failed, c.retrying, c.dead, counted.status
    FROM counts AS c LEFT JOIN counted ON true
    """
# On the session's asyncpg connection, committing by itself when the session has not begun a
# transaction (core/raw_sql.py); through the session when a dead token is retired with it.
_RECORD_SQL = RawStatement(_RECORD_TEXT)
_RECORD_IN_TRANSACTION_SQL = text(_RECORD_TEXT).bindparams(bindparam("requested", type_=Boolean()))


class PreparedRecord(NamedTuple):
    """A chunk's results as ``_RECORD_TEXT``'s parameters (``prepare_record``)."""

    notification_id: uuid.UUID
    params: dict[str, Any]
    # A result says a token is dead: its device is retired in the write's transaction, so the
    # write goes through a session (``record``), never on a bare driver (``record_prepared``).
    retires_devices: bool


def prepare_record(
    *,
    notification_id: uuid.UUID,
    expires_at: dt.datetime,
    results: Sequence[tuple[ClaimedDelivery, SendResult]],
    now: dt.datetime,
    claim: Claim | None = None,
) -> PreparedRecord | None:
    """What ``record`` writes (None for no results: nothing to write)."""
    if not results:
        return None
    ids: list[int] = []
    seen_attempts: list[int] = []
    attempts: list[int] = []
    statuses: list[str] = []
    codes: list[str | None] = []
    message_ids: list[str | None] = []
    next_attempts: list[dt.datetime | None] = []
    requested = retires_devices = False
    accepted = Outcome.ACCEPTED
    for delivery, result in results:
        ids.append(delivery.id)
        seen = delivery.attempts
        seen_attempts.append(seen)
        if result.outcome is accepted and result.error_code is None:
            # Most rows: ``_decide``'s first case, without a decision object per row; a
            # provider's acceptance is a request to it (``from_provider``).
            attempts.append(seen + 1)
            statuses.append("sent")
            codes.append(None)
            message_ids.append(result.message_id)
            next_attempts.append(None)
            requested = True
            continue
        decision = _decide(delivery, result, now=now, expires_at=expires_at)
        attempts.append(decision.attempts)
        statuses.append(decision.status)
        codes.append(decision.error_code)
        message_ids.append(decision.message_id)
        next_attempts.append(decision.next_attempt_at)
        retires_devices = retires_devices or decision.status == "invalid"
        requested = requested or from_provider(result)
    params = {
        "nid": notification_id,
        "now": now,
        "batch": claim.batch_id if claim is not None else None,
        "lease": claim.lease if claim is not None else None,
        "until": now + lease(),
        "requested": requested,
        "ids": ids,
        "seen_attempts": seen_attempts,
        "attempts": attempts,
        "statuses": statuses,
        "error_codes": codes,
        "message_ids": message_ids,
        "next_attempts": next_attempts,
    }
    return PreparedRecord(notification_id, params, retires_devices)


async def record(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    expires_at: dt.datetime,
    results: Sequence[tuple[ClaimedDelivery, SendResult]],
    now: dt.datetime,
    claim: Claim | None = None,
) -> RecordSummary:
    """Write a chunk's results in one statement (see ``_RECORD_TEXT``), retire dead tokens, and
    wake the notification's progress streams once this commits. The summary's ``status`` is the
    notification's as the write left it (its row is locked by the write, so a cancel that
    committed before it is seen): the send pipeline reads it to decide on its next chunk.
    ``claim``: the batch these results are from, whose lease the write renews."""
    prepared = prepare_record(
        notification_id=notification_id, expires_at=expires_at, results=results, now=now, claim=claim
    )
    if prepared is None:
        return RecordSummary()
    params = prepared.params
    if prepared.retires_devices:
        # The dead tokens are retired in the write's transaction (the statement through the
        # session begins it): a row recorded invalid never leaves its device live.
        row: Any = (await session.execute(_RECORD_IN_TRANSACTION_SQL, params)).one()
    else:
        row = await _RECORD_SQL.fetchrow(session, params)
    sent, invalid, failed, retrying, dead, status = row
    if dead:
        await devices.invalidate(session, device_ids=list(dead), reason="provider_rejected_token")
    publish_after_commit(session, progress_channel(notification_id), {"type": "progress"})
    return RecordSummary(sent=sent, invalid=invalid, failed=failed, retrying=retrying, status=status)


async def record_prepared(driver: PooledDriver, prepared: PreparedRecord) -> RecordSummary:
    """``record`` without a session (core/raw_sql.py ``pooled_driver``), for results that retire
    no device: the one statement commits by itself, then the progress streams are woken."""
    if prepared.retires_devices:
        raise ValueError("dead tokens are retired in the write's transaction: use record()")
    row = await _RECORD_SQL.fetchrow(driver, prepared.params)
    assert row is not None  # the statement always returns its counts
    sent, invalid, failed, retrying, _, status = row
    publish_committed(progress_channel(prepared.notification_id), {"type": "progress"})
    return RecordSummary(sent=sent, invalid=invalid, failed=failed, retrying=retrying, status=status)


# After the last chunk: the batch stays open (due when its earliest open row is) or is done.
# Only the worker still holding the lease settles; one that lost it leaves it to the new holder.
_SETTLE_SQL = RawStatement(
    """
    WITH page AS (
        SELECT notification_id, status, next_attempt_at FROM deliveries
        WHERE id BETWEEN :low AND :high
        OFFSET 0  -- see _PAGE_NOTE
    ), open_rows AS (
        SELECT count(*) AS open, min(next_attempt_at) AS next_at FROM page
        WHERE notification_id = :nid AND status IN ('pending', 'retrying')
    )
    UPDATE delivery_batches AS b
    SET leased_until = NULL,
        status = CASE WHEN o.open = 0 THEN 'done' ELSE 'open' END,
        next_attempt_at = COALESCE(o.next_at, b.next_attempt_at)
    FROM open_rows AS o
    WHERE b.id = :batch AND b.lease = :lease
    RETURNING b.status, b.next_attempt_at
    """
)


async def settle(where: AsyncSession | PooledDriver, claim: Claim) -> dt.datetime | None:
    """Release a batch after its last chunk. Returns when it is next due, if it has open rows.
    One statement on the session's asyncpg connection: in the session's transaction if one has
    begun, else committing by itself (core/raw_sql.py); or on a driver without a session,
    committing by itself."""
    row = await _SETTLE_SQL.fetchrow(
        where,
        {
            "nid": claim.notification_id,
            "low": claim.low_id,
            "high": claim.high_id,
            "batch": claim.batch_id,
            "lease": claim.lease,
        },
    )
    if row is None or row["status"] == "done":
        return None
    next_at: dt.datetime = row["next_attempt_at"]
    return next_at


async def finish_if_done(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> bool:
    """Finish the notification when its fan-out is done and no batch is open (the exact check,
    for the reconciler; the send path finishes from the counters)."""
    finished = (
        await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == "sending",
                Notification.fanout_done_at.is_not(None),
                ~_open_batches(notification_id).exists(),
            )
            .values(status="completed", completed_at=now)
            .returning(Notification.id)
        )
    ).first()
    return finished is not None


def _open_batches(notification_id: uuid.UUID) -> Select[Any]:
    return select(DeliveryBatch.id).where(
        DeliveryBatch.notification_id == notification_id, DeliveryBatch.status == "open"
    )


# Due rows of the notification's open batches that no worker holds right now, closed with one
# status; the batches they were in are done. A batch under lease is left to its worker, whose
# settle looks at the notification again (see ``close_batch``).
_CLOSE_OPEN_SQL = text(
    """
    WITH idle AS (
        UPDATE delivery_batches SET status = 'done', leased_until = NULL
        WHERE notification_id = :nid AND status = 'open' AND (leased_until IS NULL OR leased_until < :now)
          AND (CAST(:low AS bigint) IS NULL OR low_id = :low)
        RETURNING low_id, high_id
    )
    UPDATE deliveries AS d
    SET status = :status, error_code = COALESCE(:error_code, d.error_code), updated_at = :now
    FROM idle
    WHERE d.notification_id = :nid AND d.id BETWEEN idle.low_id AND idle.high_id
      AND d.status IN ('pending', 'retrying')
    RETURNING d.id
    """
)


async def close_open(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    now: dt.datetime,
    status: str,
    error_code: str | None,
    low_id: int | None = None,
) -> int:
    """Close the due rows nobody holds (all batches, or the one starting at ``low_id``) as
    ``status``. Returns how many rows."""
    result = await session.execute(
        _CLOSE_OPEN_SQL,
        {"nid": notification_id, "now": now, "status": status, "error_code": error_code, "low": low_id},
    )
    return len(result.all())


async def expire_overdue(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> int:
    """Past the TTL a push is pointless: what is still unsent fails as ``expired``."""
    count = await close_open(
        session, notification_id=notification_id, now=now, status="failed", error_code="expired"
    )
    if count:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(failed=Notification.failed + count)
        )
    return count


# Notifications whose deliveries one purge transaction looks at (each may have thousands).
_PURGE_NOTIFICATIONS = 50


async def purge_finished_batch(cutoff: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` delivery rows of notifications finished before ``cutoff`` (the
    notification row and its counters stay), in one transaction of its own. A notification whose
    rows are all gone loses its batches too and is marked ``deliveries_purged_at``, so the next
    batch (and the next night) starts after it. Returns how many deliveries."""
    async with committing() as session:
        await allow_long_statements(session, seconds=120)
        ids = (
            await session.scalars(
                select(Notification.id)
                .where(
                    Notification.deliveries_purged_at.is_(None),
                    Notification.completed_at.is_not(None),
                    Notification.completed_at < cutoff,
                    # Counted by language first (notifications/language_summary.py).
                    Notification.languages_summarized_at.is_not(None),
                )
                .order_by(Notification.completed_at)
                .limit(_PURGE_NOTIFICATIONS)
            )
        ).all()
        if not ids:
            return 0
        doomed = select(Delivery.id).where(Delivery.notification_id.in_(ids)).limit(batch)
        result = await session.execute(delete(Delivery).where(Delivery.id.in_(doomed)))
        # Counted by the server (a million ids returned to count them was the old way).
        purged = cast(CursorResult[Any], result).rowcount
        if purged < batch:
            # Every delivery of these notifications is gone: their batches go, and they are done.
            await session.execute(delete(DeliveryBatch).where(DeliveryBatch.notification_id.in_(ids)))
            await session.execute(
                update(Notification).where(Notification.id.in_(ids)).values(deliveries_purged_at=func.now())
            )
    # A short batch that still marked notifications done may leave more notifications waiting:
    # report a full batch then, so the caller asks again.
    return purged if purged >= batch or len(ids) < _PURGE_NOTIFICATIONS else batch
