"""The reconciler: PostgreSQL holds every piece of work, Redis jobs only wake workers up, so
this re-queues what a lost job, a killed worker or a flushed Redis left behind (docs/delivery.md,
"Guarantees"). It also expires what is past its TTL, finishes notifications with nothing left to
do and cancels what a worker that died holding a batch of a cancelled notification left open.

Run every ``reconcile_every_seconds`` by every worker (a unique cron job, workers/settings.py);
the jobs it queues have deterministic ids per tick, so overlapping runs queue each job once.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from core.after_commit import committing
from core.config import get_settings
from core.jobs import FAN_OUT_MORE_PREFIX, JobName, defer
from core.logging import get_logger
from notifications import metrics, outbox
from notifications import service as notifications_service
from notifications.models import DeliveryBatch, Notification
from notifications.service import queue_for
from notifications.states import FINAL_STATUSES

log = get_logger(__name__)

MAX_JOBS_PER_RECONCILE = 50


async def reconcile(*, now: dt.datetime) -> dict[str, int]:
    """One pass, in one transaction; the jobs it queues are enqueued after its commit."""
    tick = int(now.timestamp() // 15)  # job-id bucket: one re-queue per batch per tick
    grace = dt.timedelta(seconds=get_settings().reconcile_grace_seconds)
    stats = {"fanouts": 0, "batches": 0, "expired": 0, "cancelled": 0}
    async with committing() as session:
        active = (
            (
                await session.execute(
                    select(Notification).where(Notification.status.in_(("queued", "fanning_out", "sending")))
                )
            )
            .scalars()
            .all()
        )
        for notification in active:
            queue = queue_for(notification.priority)
            if notification.expires_at <= now:
                # Locked and read again: read above without a lock, it may have been cancelled
                # since, and writing ``sending`` over that would complete a cancelled push.
                locked = await session.get(
                    Notification, notification.id, with_for_update=True, populate_existing=True
                )
                if locked is None or locked.status in FINAL_STATUSES:
                    continue
                stats["expired"] += await outbox.expire_overdue(
                    session, notification_id=notification.id, now=now
                )
                if notification.fanout_done_at is None:
                    notification.fanout_done_at = now  # nothing more will be fanned out
                notification.status = "sending"
                await session.flush()
                await outbox.finish_if_done(session, notification_id=notification.id, now=now)
                continue
            if notification.fanout_done_at is None and notification.created_at <= now - grace:
                defer(
                    session,
                    JobName.FAN_OUT,
                    str(notification.id),
                    # Backlog, like the fan-out's own next slice: started behind the send jobs
                    # queued before it, so a long fan-out is not pushed ahead of its sends every
                    # tick (core/jobs.py).
                    job_id=f"{FAN_OUT_MORE_PREFIX}{notification.id}:r{tick}",
                    queue=queue,
                )
                stats["fanouts"] += 1
            # Batches due for a while that nobody holds: their job was lost or their worker died.
            overdue = await session.execute(
                select(DeliveryBatch.low_id, DeliveryBatch.high_id)
                .where(
                    DeliveryBatch.notification_id == notification.id,
                    DeliveryBatch.status == "open",
                    DeliveryBatch.next_attempt_at <= now - grace,
                    or_(DeliveryBatch.leased_until.is_(None), DeliveryBatch.leased_until < now),
                )
                .order_by(DeliveryBatch.next_attempt_at)
                .limit(MAX_JOBS_PER_RECONCILE)
            )
            for low_id, high_id in overdue.all():
                defer(
                    session,
                    JobName.SEND_BATCH,
                    str(notification.id),
                    low_id,
                    high_id,
                    job_id=f"resend:{notification.id}:{low_id}:{tick}",
                    queue=queue,
                )
                stats["batches"] += 1
            if notification.fanout_done_at is not None and notification.status == "sending":
                await outbox.finish_if_done(session, notification_id=notification.id, now=now)
        cancelled = (
            (
                await session.execute(
                    select(Notification)
                    .where(
                        Notification.status == "cancelled",
                        select(DeliveryBatch.id)
                        .where(
                            DeliveryBatch.notification_id == Notification.id,
                            DeliveryBatch.status == "open",
                            or_(DeliveryBatch.leased_until.is_(None), DeliveryBatch.leased_until < now),
                        )
                        .exists(),
                    )
                    .limit(MAX_JOBS_PER_RECONCILE)
                )
            )
            .scalars()
            .all()
        )
        for notification in cancelled:
            stats["cancelled"] += await notifications_service.cancel_remaining(
                session, notification=notification, now=now
            )
    # Counted once the pass committed (a rolled-back pass queued and closed nothing).
    metrics.RECONCILER_REQUEUED.labels("fan_out").inc(stats["fanouts"])
    metrics.RECONCILER_REQUEUED.labels("send_batch").inc(stats["batches"])
    metrics.RECONCILER_CLOSED.labels("expired").inc(stats["expired"])
    metrics.RECONCILER_CLOSED.labels("cancelled").inc(stats["cancelled"])
    if any(stats.values()):
        log.info("reconciled", **stats)
    return stats
