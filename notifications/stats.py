"""Per-notification delivery stats (per language, per platform), receipts, timing, and the live
progress stream.

* **Stats** (``GET /v1/notifications/{id}/stats``) group the notification's delivery rows by
  language and the device's platform in one query, and its receipts likewise, so every figure
  adds up: ``targeted = sent + invalid + failed + retrying + pending + cancelled``. Receipts of a
  signed-in user's inbox carry no device and are counted under ``unknown``.
* **Timing**: ``first_request_at`` / ``last_request_at`` on the notification are set when a
  batch's provider answers are recorded (by ``outbox.record``, in the same statement), so "time to
  first / last provider request" costs nothing to read. They are the recording times, i.e. late
  by at most one batch's round trip.
* **Progress** (``GET /v1/notifications/{id}/progress``): Server-Sent Events, as the inbox
  stream (inbox/stream.py): ``outbox.record`` publishes a wake-up on Redis after the batch's commit;
  the stream sends a cheap snapshot (the notification's counters and the receipt counts, two
  index lookups) when woken, at most every ``MIN_GAP_SECONDS``, and at least every
  ``SNAPSHOT_SECONDS``; once the notification is finished it sends ``final`` with the full stats
  and ends. With Redis down the stream still works, by polling alone. It yields events
  (``core.streams.StreamEvent``); the transport (``api/sse.py``) puts them on the wire.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import transaction
from core.logging import get_logger
from core.redis import new_redis_client
from core.streams import StreamEvent, cleanup_scope
from devices.models import Device
from notifications.channels import progress_channel
from notifications.models import Delivery, Notification, Receipt
from notifications.schemas import DeliveryCounts, NotificationProgress, NotificationStatsOut
from notifications.states import FINAL_STATUSES

log = get_logger(__name__)

UNKNOWN = "unknown"
SNAPSHOT_SECONDS = 1.0
MIN_GAP_SECONDS = 0.25
MAX_STREAM_SECONDS = 300.0


def _seconds(created_at: dt.datetime, at: dt.datetime | None) -> float | None:
    return None if at is None else round((at - created_at).total_seconds(), 3)


async def _timing_of(session: AsyncSession, notification_id: uuid.UUID) -> tuple[dt.datetime | None, ...]:
    row = (
        await session.execute(
            select(Notification.first_request_at, Notification.last_request_at).where(
                Notification.id == notification_id
            )
        )
    ).one()
    return row.first_request_at, row.last_request_at


async def receipt_counts(session: AsyncSession, *, notification_id: uuid.UUID) -> tuple[int, int]:
    """Readers who reported the notification received / opened: the receipts still kept (their
    primary key starts with the notification id: an index range) plus those the purge summed
    onto the notification before deleting them (notifications/receipt_purge.py)."""
    kept = select(func.count(Receipt.received_at), func.count(Receipt.opened_at)).where(
        Receipt.notification_id == notification_id
    )
    row = (await session.execute(kept)).one()
    summed = (
        await session.execute(
            select(Notification.receipts_received, Notification.receipts_opened).where(
                Notification.id == notification_id
            )
        )
    ).one_or_none()
    received, opened = (summed[0] or 0, summed[1] or 0) if summed else (0, 0)
    return int(row[0]) + received, int(row[1]) + opened


def _add(into: dict[str, DeliveryCounts], key: str, **values: int) -> None:
    current = into.setdefault(key, DeliveryCounts())
    for name, value in values.items():
        setattr(current, name, getattr(current, name) + value)


async def stats_of(session: AsyncSession, *, notification: Notification) -> NotificationStatsOut:
    """The full breakdown. One grouped scan of the notification's deliveries (the unique index
    on (notification_id, device_id)) joined to devices, and one of its receipts."""
    settled = {"sent", "invalid", "failed", "retrying", "cancelled"}
    counted = {name: func.count().filter(Delivery.status == name) for name in sorted(settled)}
    delivery_rows = (
        await session.execute(
            select(Delivery.language, Device.platform, func.count().label("targeted"), *counted.values())
            .join(Device, Device.id == Delivery.device_id)
            .where(Delivery.notification_id == notification.id)
            .group_by(Delivery.language, Device.platform)
        )
    ).all()
    language = func.coalesce(Delivery.language, Device.locale, UNKNOWN)
    platform = func.coalesce(Device.platform, UNKNOWN)
    receipt_rows = (
        await session.execute(
            select(language, platform, func.count(Receipt.received_at), func.count(Receipt.opened_at))
            .select_from(Receipt)
            .outerjoin(Device, Device.id == Receipt.device_id)
            .outerjoin(
                Delivery,
                (Delivery.notification_id == Receipt.notification_id)
                & (Delivery.device_id == Receipt.device_id),
            )
            .where(Receipt.notification_id == notification.id)
            .group_by(language, platform)
        )
    ).all()

    totals: dict[str, DeliveryCounts] = {}
    by_language: dict[str, DeliveryCounts] = {}
    by_platform: dict[str, DeliveryCounts] = {}
    for row in delivery_rows:
        values = dict(zip(sorted(settled), row[3:], strict=True))
        # Everything not final nor retrying: not yet sent, or in a worker's hands right now;
        # computed as the rest so the identity holds whatever the statuses.
        values["pending"] = row.targeted - sum(values.values())
        values["targeted"] = row.targeted
        for into, key in ((totals, "all"), (by_language, row.language), (by_platform, row.platform)):
            _add(into, key, **values)
    for lang, plat, received, opened in receipt_rows:
        for into, key in ((totals, "all"), (by_language, lang), (by_platform, plat)):
            _add(into, key, received=received, opened=opened)

    first, last = await _timing_of(session, notification.id)
    return NotificationStatsOut(
        notification_id=notification.id,
        status=notification.status,
        priority=notification.priority,
        created_at=notification.created_at,
        completed_at=notification.completed_at,
        totals=totals.get("all", DeliveryCounts()),
        by_language=dict(sorted(by_language.items())),
        by_platform=dict(sorted(by_platform.items())),
        first_request_at=first,
        last_request_at=last,
        seconds_to_first_request=_seconds(notification.created_at, first),
        seconds_to_last_request=_seconds(notification.created_at, last),
    )


async def progress_of(session: AsyncSession, *, notification: Notification) -> NotificationProgress:
    received, opened = await receipt_counts(session, notification_id=notification.id)
    first, last = await _timing_of(session, notification.id)
    return NotificationProgress(
        notification_id=notification.id,
        status=notification.status,
        finished=notification.status in FINAL_STATUSES,
        targeted=notification.targeted,
        sent=notification.sent,
        invalid=notification.invalid,
        failed=notification.failed,
        cancelled=notification.cancelled,
        pending=notification.pending,
        received=received,
        opened=opened,
        seconds_to_first_request=_seconds(notification.created_at, first),
        seconds_to_last_request=_seconds(notification.created_at, last),
    )


async def _snapshot(
    notification_id: uuid.UUID,
) -> tuple[NotificationProgress | None, NotificationStatsOut | None]:
    """The progress now, and the full stats once the notification is finished."""
    async with transaction() as session:
        notification = await session.get(Notification, notification_id)
        if notification is None:
            return None, None
        progress = await progress_of(session, notification=notification)
        final = await stats_of(session, notification=notification) if progress.finished else None
        return progress, final


async def _woken(pubsub: Any, seconds: float) -> bool:
    """Wait for a wake-up (True) or the timeout (False); drain the wake-ups queued meanwhile, so
    a burst of recorded batches costs one snapshot."""
    deadline = time.monotonic() + seconds
    # get_message also returns None, early, for the ignored subscribe confirmation: keep waiting.
    while (left := deadline - time.monotonic()) > 0:
        if await pubsub.get_message(ignore_subscribe_messages=True, timeout=left) is not None:
            while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0) is not None:
                pass
            return True
    return False


async def progress_stream(notification_id: uuid.UUID) -> AsyncGenerator[StreamEvent, None]:
    """``progress`` snapshots until the notification is finished, then ``final`` (full stats)
    and the end. The caller has already checked that the principal may see the notification."""
    # A connection of its own: a subscribed connection cannot serve other commands.
    redis = new_redis_client(decode_responses=True)
    pubsub: Any = redis.pubsub()
    try:
        try:
            await pubsub.subscribe(progress_channel(notification_id))
        except Exception as exc:  # Redis down: snapshots by polling only
            log.warning("progress_subscribe_failed", error=type(exc).__name__)
            pubsub = None
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while True:
            sent_at = time.monotonic()
            progress, final = await _snapshot(notification_id)
            if progress is None:
                yield StreamEvent("gone", {"notification_id": str(notification_id)})
                return
            if final is not None:
                yield StreamEvent("final", final.model_dump(mode="json"))
                return
            yield StreamEvent("progress", progress.model_dump(mode="json"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return  # the client reconnects (EventSource does so by itself)
            timeout = min(SNAPSHOT_SECONDS, remaining)
            if pubsub is None:
                await asyncio.sleep(timeout)
                continue
            try:
                woken = await _woken(pubsub, timeout)
            except Exception as exc:
                log.warning("progress_wakeup_failed", error=type(exc).__name__)
                pubsub = None
                continue
            if woken:
                await asyncio.sleep(max(0.0, sent_at + MIN_GAP_SECONDS - time.monotonic()))
    finally:
        with cleanup_scope():  # a viewer who closed the page must not leak the Redis connection
            if pubsub is not None:
                await pubsub.aclose()
            await redis.aclose()


# --- Stored history (the delivery view's chart after the fact) -----------------------------------

HISTORY_BUCKETS = 60
HISTORY_SERIES = ("sent", "failed", "invalid", "received", "opened")
_SETTLED_FOR_HISTORY = ("sent", "failed", "invalid")


@dataclass(frozen=True)
class HistoryBucket:
    """Events in ``[start, start + bucket_seconds)`` (the last bucket also holds its end)."""

    start: dt.datetime
    sent: int = 0
    failed: int = 0
    invalid: int = 0
    received: int = 0
    opened: int = 0


@dataclass(frozen=True)
class DeliveryHistory:
    start: dt.datetime  # the notification's created_at
    end: dt.datetime  # the last recorded event (== start when nothing happened yet)
    bucket_seconds: float
    buckets: list[HistoryBucket] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(b, name) for b in self.buckets) for name in HISTORY_SERIES}


def _bucket_of(stamp: Any, start: dt.datetime, width: float, count: int) -> Any:
    """The 0-based bucket of a timestamp column, clamped into [0, count - 1]: an event stamped a
    hair before ``created_at`` (clock skew between hosts) still counts, so the buckets always add
    up to the totals."""
    offset = func.extract("epoch", stamp - start)
    return func.least(func.greatest(func.floor(offset / width), 0), count - 1).cast(Integer)


async def history_of(
    session: AsyncSession, *, notification: Notification, max_buckets: int = HISTORY_BUCKETS
) -> DeliveryHistory:
    """Sent / failed / invalid (by ``deliveries.updated_at`` of rows in those final states) and
    received / opened (by the receipts' timestamps) in at most ``max_buckets`` equal buckets
    from the notification's creation to its last event. Nothing new is recorded for it: these
    are the timestamps the pipeline already keeps, so the chart survives a page reload and the
    end of the push. A row's ``updated_at`` is when it reached its state (a final row is not
    touched again), hence "when it was sent"."""
    start = notification.created_at
    final = Delivery.status.in_(_SETTLED_FOR_HISTORY)
    last_delivery = (
        await session.execute(
            select(func.max(Delivery.updated_at)).where(Delivery.notification_id == notification.id, final)
        )
    ).scalar()
    last_receipt = (
        await session.execute(
            select(func.max(func.greatest(Receipt.received_at, Receipt.opened_at))).where(
                Receipt.notification_id == notification.id
            )
        )
    ).scalar()
    end = max([start, *(t for t in (last_delivery, last_receipt) if t is not None)])
    span = (end - start).total_seconds()
    # One bucket per second at least: a push that took 3 s is drawn with 3 points, not 60.
    count = max(1, min(max_buckets, math.ceil(span)))
    width = max(span / count, 1e-6)
    if last_delivery is None and last_receipt is None:
        return DeliveryHistory(start=start, end=end, bucket_seconds=width, buckets=[])

    series: dict[str, dict[int, int]] = {name: {} for name in HISTORY_SERIES}
    bucket = _bucket_of(Delivery.updated_at, start, width, count).label("bucket")
    counted = [func.count().filter(Delivery.status == name) for name in _SETTLED_FOR_HISTORY]
    rows = await session.execute(
        select(bucket, *counted).where(Delivery.notification_id == notification.id, final).group_by(bucket)
    )
    for index, *values in rows.all():
        for name, value in zip(_SETTLED_FOR_HISTORY, values, strict=True):
            series[name][index] = value
    for name, column in (("received", Receipt.received_at), ("opened", Receipt.opened_at)):
        receipt_bucket = _bucket_of(column, start, width, count).label("bucket")
        receipt_rows = await session.execute(
            select(receipt_bucket, func.count())
            .where(Receipt.notification_id == notification.id, column.is_not(None))
            .group_by(receipt_bucket)
        )
        series[name] = {row[0]: row[1] for row in receipt_rows.all()}
    buckets = [
        HistoryBucket(
            start=start + dt.timedelta(seconds=i * width),
            **{name: series[name].get(i, 0) for name in HISTORY_SERIES},
        )
        for i in range(count)
    ]
    return DeliveryHistory(start=start, end=end, bucket_seconds=width, buckets=buckets)
