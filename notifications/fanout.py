"""Fan-out: turn a notification's audience into delivery rows, one keyset page at a time."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit
from core.after_commit import committing
from core.db import utcnow
from core.jobs import FAN_OUT_MORE_PREFIX, FAN_OUT_PREFIX, FIRST_PAGE_PREFIX, JobName, defer
from devices.locales import DEFAULT_LANGUAGE
from notifications import first_pages
from notifications.audience import page_query
from notifications.models import DeliveryBatch, Notification
from notifications.service import queue_for
from notifications.states import FINAL_STATUSES

PAGE_SIZE = 500  # also the size of one send batch (FCM's send_each limit)
RECIPIENTS_WAIT = dt.timedelta(seconds=1)
SLICE_SECONDS = 40.0  # stay well inside the 60 s job timeout; the fan-out re-queues itself
# ...and after this many pages (20,000 deliveries), so that it queues up behind the send jobs it
# made: the fan-out stays a few pages ahead of the sends instead of writing a million rows first
# (rows sent soon after they were written are still in PostgreSQL's buffers; see docs/delivery.md).
# Its id marks it as backlog, which workers start in queue order, behind new work (core/jobs.py).
SLICE_PAGES = 40

# Arrays rather than a 500-row VALUES list: the statement is compiled once and cached, where a
# multi-row ``insert().values([...])`` was recompiled for every page (15 % of worker CPU). The
# page's batch row (what a send job leases, outbox.py) is written by the same statement.
_INSERT_PAGE_SQL = text(
    """
    WITH inserted AS (
        INSERT INTO deliveries (notification_id, device_id, provider, language, next_attempt_at)
        SELECT CAST(:notification_id AS uuid), page.device_id, page.provider, page.language,
            CAST(:now AS timestamptz)
        FROM unnest(CAST(:device_ids AS uuid[]), CAST(:providers AS text[]), CAST(:languages AS text[]))
            AS page(device_id, provider, language)
        ON CONFLICT ON CONSTRAINT uq_deliveries_notification_device DO NOTHING
        RETURNING id
    ), page AS (
        SELECT count(*) AS inserted, min(id) AS low_id, max(id) AS high_id FROM inserted
    ), batch AS (
        INSERT INTO delivery_batches (notification_id, low_id, high_id, next_attempt_at, created_at)
        SELECT CAST(:notification_id AS uuid), low_id, high_id, CAST(:now AS timestamptz),
            CAST(:now AS timestamptz)
        FROM page WHERE inserted > 0
    )
    SELECT inserted, low_id, high_id FROM page
    """
)


async def fan_out(*, notification_id: uuid.UUID, slice_pages: int = SLICE_PAGES) -> int:
    """Fan out for one slice (``slice_pages`` pages or ``SLICE_SECONDS``), a transaction per page,
    then hand over to a fresh fan-out job, which is backlog. Returns how many pages it wrote. (An
    urgent worker writes one page, the first unless the approval wrote it: workers/roles.py.)"""
    started = time.monotonic()
    pages = 0
    while True:
        async with committing() as session:
            more = await fan_out_page(session, notification_id=notification_id, now=utcnow())
            pages += 1
            if more and (pages >= slice_pages or time.monotonic() - started > SLICE_SECONDS):
                notification = await session.get(Notification, notification_id)
                assert notification is not None
                defer(
                    session,
                    JobName.FAN_OUT,
                    str(notification_id),
                    job_id=f"{FAN_OUT_MORE_PREFIX}{notification_id}:{notification.fanout_cursor}",
                    queue=queue_for(notification.priority),
                )
                return pages
        if not more:
            return pages


async def fan_out_page(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> bool:
    """Insert the next page of deliveries and queue a send batch for it. Returns True while more
    pages remain. Idempotent: the notification row is locked, the cursor is stored with the page,
    and ``ON CONFLICT DO NOTHING`` absorbs a page written twice."""
    notification = await session.get(Notification, notification_id, with_for_update=True)
    if (
        notification is None
        or notification.status in FINAL_STATUSES
        or notification.fanout_done_at is not None
    ):
        return False
    if notification.expires_at <= now:
        notification.status, notification.completed_at = "expired", now
        return False
    original = notification.audience.get("recipients_of")
    if original is not None and await _still_on_the_wire(session, uuid.UUID(original), now=now):
        # A recall's retract goes to the devices the original reached, read from its ``sent``
        # rows; a batch still held (its last requests on the wire when the recall cancelled it)
        # has not recorded them yet. Look again in a moment; the reconciler restarts a fan-out
        # whose job was lost.
        defer(
            session,
            JobName.FAN_OUT,
            str(notification.id),
            job_id=f"{FAN_OUT_PREFIX}{notification.id}:after:{int(now.timestamp())}",
            queue=queue_for(notification.priority),
            defer_until=now + RECIPIENTS_WAIT,
        )
        return False
    sender_path = None
    if notification.unit_id is not None:
        sender_path = (
            await session.execute(select(Unit.path).where(Unit.id == notification.unit_id))
        ).scalar()
    rows = (
        await session.execute(
            page_query(
                app=notification.app,
                audience=notification.audience,
                sender_unit_path=sender_path,
                after=notification.fanout_cursor,
                limit=PAGE_SIZE,
                now=now,
            )
        )
    ).all()
    if rows:
        languages = notification.title
        first_page = notification.fanout_cursor is None
        page = (
            await session.execute(
                _INSERT_PAGE_SQL,
                {
                    "notification_id": notification.id,
                    "now": now,
                    "device_ids": [row.id for row in rows],
                    "providers": [row.provider for row in rows],
                    "languages": [
                        row.locale if row.locale in languages else DEFAULT_LANGUAGE for row in rows
                    ],
                },
            )
        ).one()
        notification.targeted += page.inserted
        notification.fanout_cursor = rows[-1].id
        notification.status = "sending"
        if page.inserted:
            # The job leases this page's batch; a page written twice inserts nothing and its first
            # writer already queued the job. A first page's job is not backlog: a worker starts it
            # at once and may send it beside the batch it is starting (core/jobs.py).
            prefix = FIRST_PAGE_PREFIX if first_page else "send:"
            defer(
                session,
                JobName.SEND_BATCH,
                str(notification.id),
                page.low_id,
                page.high_id,
                job_id=f"{prefix}{notification.id}:{rows[-1].id.hex}",
                queue=queue_for(notification.priority),
            )
            if first_page:
                # ...and is told at once, not at its next poll (notifications/first_pages.py).
                first_pages.announce_after_commit(
                    session,
                    first_pages.FirstPage(notification.id, page.low_id, queue_for(notification.priority)),
                )
    if len(rows) < PAGE_SIZE:
        notification.fanout_done_at = now
        settled = notification.sent + notification.invalid + notification.failed
        if notification.targeted == 0 or settled >= notification.targeted:
            # Nothing targeted, or every send already recorded before the last (empty) page.
            notification.status, notification.completed_at = "completed", now
        return False
    return True


async def _still_on_the_wire(session: AsyncSession, notification_id: uuid.UUID, *, now: dt.datetime) -> bool:
    """Does a worker hold a batch of this notification (its results not all recorded yet)?"""
    held = exists().where(
        DeliveryBatch.notification_id == notification_id,
        DeliveryBatch.status == "open",
        DeliveryBatch.leased_until >= now,
    )
    return bool(await session.scalar(select(held)))
