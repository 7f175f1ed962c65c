"""Delivery jobs: each unwraps its arguments and calls one use case of notifications/.

Every job is idempotent: arq may run a job twice, and the reconciler may queue extra copies;
the outbox's leases and ``SKIP LOCKED`` make the extra copies find nothing to do.
"""

from __future__ import annotations

import uuid

from core.config import get_settings
from core.db import utcnow
from core.jobs import JobName, is_first_page_job
from inbox.badges import unread_badges
from notifications import delivery, fanout, first_page_lane, retention
from notifications import reconcile as reconciler
from tracking import retention as tracking_retention
from workers.context import JobContext, job


@job(JobName.FAN_OUT)
async def fan_out(ctx: JobContext, notification_id: str) -> int:
    # An urgent worker writes one page (a new notification's first) and leaves the rest to the
    # others as backlog (workers/roles.py).
    pages = 1 if ctx.worker.urgent_only else fanout.SLICE_PAGES
    return await fanout.fan_out(notification_id=uuid.UUID(notification_id), slice_pages=pages)


@job(JobName.SEND_BATCH)
async def send_batch(
    ctx: JobContext, notification_id: str, low_id: int | None = None, high_id: int | None = None
) -> dict[str, int]:
    """The batch starting at ``low_id`` or, without one, the notification's most overdue open
    batch, unless a more urgent batch of its queue is due (a new notification's first page: then
    that one, notifications/delivery.py ``_claim``). (``high_id`` is kept for jobs queued before
    batches had rows of their own; the batch row knows its range.) Each push carries its reader's
    unread count in the inbox as the badge: inbox depends on notifications, never the reverse, so
    the job hands the pipeline the count. A first page's job (its id says so, core/jobs.py) may
    send on the worker's first-page lane."""
    nid = uuid.UUID(notification_id)
    if low_id is not None and ctx.job_id is not None and is_first_page_job(ctx.job_id):
        sent = await first_page_lane.send_first_page(nid, low_id, ctx.providers, unread_badges)
        if sent is not None:
            return sent
    return await delivery.send_batch(
        notification_id=nid, low_id=low_id, providers=ctx.providers, badge_source=unread_badges
    )


@job(JobName.RECONCILE)
async def reconcile(ctx: JobContext) -> dict[str, int]:
    return await reconciler.reconcile(now=utcnow())


@job(JobName.PURGE)
async def purge(ctx: JobContext) -> dict[str, int | bool]:
    # The tracking ledger is purged within the same time budget; notifications cannot import it.
    reminders = retention.Kind(
        "reminders",
        get_settings().retention_reminders_days,
        tracking_retention.purge_batch,
        get_settings().retention_batch_size,
    )
    return await retention.purge(now=utcnow(), also=[reminders])
