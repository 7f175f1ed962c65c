"""The delivery outbox: claim due rows, record provider results, schedule retries.

A claim is a short transaction: due rows are picked with ``FOR UPDATE SKIP LOCKED`` and leased
(status ``sending``, ``claimed_until``) so no transaction stays open across network calls. A
worker killed mid-batch leaves its rows leased; once the lease ends they are due again, so at
most one batch is sent twice (at-least-once to the provider).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, exists, or_, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement, TextClause

from core.config import get_settings
from devices import service as devices
from notifications.models import Delivery, Notification
from notifications.providers.base import Outcome, SendResult

MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 900.0
DUE_STATUSES = ("pending", "retrying")


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    device_id: uuid.UUID
    provider: str
    language: str
    attempts: int
    token: str | None  # None when the device was retired after the fan-out
    apns_environment: str | None


def lease() -> dt.timedelta:
    """Longer than the send job's timeout (60 s), so a live batch never loses its lease."""
    return dt.timedelta(seconds=get_settings().delivery_lease_seconds)


def due_clause(now: dt.datetime) -> ColumnElement[bool]:
    """Rows a worker may take: due pending/retrying rows and leases that ran out (``_CLAIM_SQL``
    spells the same condition in SQL)."""
    return or_(
        and_(Delivery.status.in_(DUE_STATUSES), Delivery.next_attempt_at <= now),
        and_(Delivery.status == "sending", Delivery.claimed_until < now),
    )


# One round trip: pick due rows (skipping rows other workers hold), lease them, and read the
# device's current token. Plain SQL, compiled once and cached (the ORM version compiled an
# expanding IN list per batch). A device retired after the fan-out comes back with a NULL token.
def _claim_sql(*, ranged: bool) -> TextClause:
    # A send job made by the fan-out knows the id range of the page it was queued for, and claims
    # through the primary key in that range: the cost stays per page whatever the table's size.
    # Without a range (retries, the reconciler) due rows are taken in due order.
    where_range = "AND id BETWEEN :low AND :high" if ranged else ""
    order = "id" if ranged else "next_attempt_at"
    return text(
        f"""
        WITH picked AS (
            SELECT id FROM deliveries
            WHERE notification_id = :notification_id {where_range}
              AND (
                (status IN ('pending', 'retrying') AND next_attempt_at <= :now)
                OR (status = 'sending' AND claimed_until < :now)
              )
            ORDER BY {order}
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ), leased AS (
            UPDATE deliveries AS d
            SET status = 'sending', claimed_until = :until, attempts = d.attempts + 1, updated_at = :now
            FROM picked
            WHERE d.id = picked.id
            RETURNING d.id, d.device_id, d.provider, d.language, d.attempts
        )
        SELECT leased.id, leased.device_id, leased.provider, leased.language, leased.attempts,
               devices.token, devices.apns_environment
        FROM leased
        LEFT JOIN devices ON devices.id = leased.device_id AND devices.invalidated_at IS NULL
        ORDER BY leased.id
        """  # noqa: S608 - the two variants are fixed strings, every value is a bind parameter
    )


_CLAIM_DUE_SQL = _claim_sql(ranged=False)
_CLAIM_RANGE_SQL = _claim_sql(ranged=True)


async def claim(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    limit: int,
    now: dt.datetime,
    id_range: tuple[int, int] | None = None,
) -> list[ClaimedDelivery]:
    params: dict[str, object] = {
        "notification_id": notification_id,
        "now": now,
        "until": now + lease(),
        "limit": limit,
    }
    if id_range is not None:
        params["low"], params["high"] = id_range
    statement = _CLAIM_DUE_SQL if id_range is None else _CLAIM_RANGE_SQL
    rows = (await session.execute(statement, params)).all()
    return [
        ClaimedDelivery(
            id=row.id,
            device_id=row.device_id,
            provider=row.provider,
            language=row.language,
            attempts=row.attempts,
            token=row.token,
            apns_environment=row.apns_environment,
        )
        for row in rows
    ]


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
    next_retry_at: dt.datetime | None = None


@dataclass(frozen=True)
class _Decision:
    delivery: ClaimedDelivery
    status: str
    error_code: str | None
    message_id: str | None = None
    next_attempt_at: dt.datetime | None = None
    refund: bool = False  # give back the attempt the claim counted (nothing reached the provider)


def _decide(
    delivery: ClaimedDelivery, result: SendResult, *, now: dt.datetime, expires_at: dt.datetime
) -> _Decision:
    if result.outcome is Outcome.ACCEPTED:
        return _Decision(delivery, "sent", result.error_code, message_id=result.message_id)
    if result.outcome is Outcome.INVALID_TOKEN:
        return _Decision(delivery, "invalid", result.error_code)
    if result.outcome is Outcome.RETRY:
        if not result.attempted:
            # Held back before the provider (pacing): only the TTL bounds it, and the attempt the
            # claim counted is given back.
            next_at = now + dt.timedelta(seconds=max(result.retry_after or 0.0, 1.0))
            if next_at >= expires_at:
                return _Decision(delivery, "failed", f"{result.error_code or 'retry'}:gave_up"[:64])
            return _Decision(delivery, "retrying", result.error_code, next_attempt_at=next_at, refund=True)
        next_at = now + dt.timedelta(seconds=retry_delay(delivery.attempts, result.retry_after))
        if delivery.attempts >= MAX_ATTEMPTS or next_at >= expires_at:
            return _Decision(delivery, "failed", f"{result.error_code or 'retry'}:gave_up"[:64])
        return _Decision(delivery, "retrying", result.error_code, next_attempt_at=next_at)
    return _Decision(delivery, "failed", result.error_code)


# One statement for the whole batch. ``attempts`` is the fencing token: a row whose lease ran out
# and was claimed again by another worker has a higher count, so a late result cannot overwrite
# the newer attempt's, and the counters only count rows actually written.
_RECORD_SQL = text(
    """
    UPDATE deliveries AS d
    SET status = r.status,
        error_code = r.error_code,
        provider_message_id = COALESCE(r.message_id, d.provider_message_id),
        next_attempt_at = COALESCE(r.next_attempt_at, d.next_attempt_at),
        attempts = d.attempts - CASE WHEN r.refund THEN 1 ELSE 0 END,
        claimed_until = NULL,
        updated_at = :now
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:attempts AS integer[]), CAST(:statuses AS text[]),
        CAST(:error_codes AS text[]), CAST(:message_ids AS text[]), CAST(:next_attempts AS timestamptz[]),
        CAST(:refunds AS boolean[])
    ) AS r(id, attempts, status, error_code, message_id, next_attempt_at, refund)
    WHERE d.id = r.id AND d.attempts = r.attempts AND d.status = 'sending'
    RETURNING d.id, d.status, d.device_id, d.next_attempt_at
    """
)


async def record(
    session: AsyncSession,
    *,
    notification: Notification,
    results: Sequence[tuple[ClaimedDelivery, SendResult]],
    now: dt.datetime,
) -> RecordSummary:
    """Write every result in one statement, retire dead tokens, roll the counters up, and finish
    the notification once nothing is left to send."""
    summary = RecordSummary()
    decisions = [_decide(d, r, now=now, expires_at=notification.expires_at) for d, r in results]
    if decisions:
        written = (
            await session.execute(
                _RECORD_SQL,
                {
                    "now": now,
                    "ids": [x.delivery.id for x in decisions],
                    "attempts": [x.delivery.attempts for x in decisions],
                    "statuses": [x.status for x in decisions],
                    "error_codes": [x.error_code for x in decisions],
                    "message_ids": [x.message_id for x in decisions],
                    "next_attempts": [x.next_attempt_at for x in decisions],
                    "refunds": [x.refund for x in decisions],
                },
            )
        ).all()
        dead_devices = [row.device_id for row in written if row.status == "invalid"]
        for row in written:
            if row.status == "sent":
                summary.sent += 1
            elif row.status == "invalid":
                summary.invalid += 1
            elif row.status == "failed":
                summary.failed += 1
            else:
                summary.retrying += 1
                if summary.next_retry_at is None or row.next_attempt_at < summary.next_retry_at:
                    summary.next_retry_at = row.next_attempt_at
        if dead_devices:
            await devices.invalidate(session, device_ids=dead_devices, reason="provider_rejected_token")
    if summary.sent or summary.invalid or summary.failed:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification.id)
            .values(
                sent=Notification.sent + summary.sent,
                invalid=Notification.invalid + summary.invalid,
                failed=Notification.failed + summary.failed,
            )
        )
    # Stats: first/last provider request times, and a wake-up for live progress streams.
    from notifications.stats import note_batch  # at call time: stats loads inbox and service modules

    await note_batch(session, notification_id=notification.id, results=results, now=now)
    await finish_if_counted(session, notification_id=notification.id, now=now)
    return summary


async def finish_if_counted(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> bool:
    """Finish the notification once its counters show every targeted delivery settled. Constant
    cost per batch, where looking for open rows walks the due index past every row already sent
    (quadratic over a 1M-device send). The reconciler's ``finish_if_done`` is the exact backstop,
    e.g. when a deleted device took its delivery row with it."""
    finished = (
        await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == "sending",
                Notification.fanout_done_at.is_not(None),
                Notification.sent + Notification.invalid + Notification.failed >= Notification.targeted,
            )
            .values(status="completed", completed_at=now)
            .returning(Notification.id)
        )
    ).first()
    return finished is not None


async def finish_if_done(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> bool:
    open_work = exists().where(
        Delivery.notification_id == notification_id, Delivery.status.in_((*DUE_STATUSES, "sending"))
    )
    finished = (
        await session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status == "sending",
                Notification.fanout_done_at.is_not(None),
                ~open_work,
            )
            .values(status="completed", completed_at=now)
            .returning(Notification.id)
        )
    ).first()
    return finished is not None


async def expire_overdue(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> int:
    """Past the TTL a push is pointless: what is still unsent fails as ``expired``."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.notification_id == notification_id, Delivery.status.in_(DUE_STATUSES))
        .values(status="failed", error_code="expired", updated_at=now)
        .returning(Delivery.id)
    )
    count = len(result.all())
    if count:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(failed=Notification.failed + count)
        )
    return count
