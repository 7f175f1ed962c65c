"""Fan-out: turn a notification's audience into delivery rows, one keyset page at a time."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit
from core.after_commit import committing
from core.db import autocommitted, utcnow
from core.jobs import FAN_OUT_MORE_PREFIX, FAN_OUT_PREFIX, FIRST_PAGE_PREFIX, JobName, defer
from core.raw_sql import RawStatement
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
# page's batch row (what a send job leases, outbox.py) is written by the same statement. Both
# statements below share these CTEs; each defines ``planned`` (the notification the page is for).
_PAGE_CTES = """
    inserted AS (
        INSERT INTO deliveries (notification_id, device_id, provider, language, next_attempt_at)
        SELECT planned.id, page.device_id, page.provider, page.language, CAST(:now AS timestamptz)
        FROM planned, unnest(CAST(:device_ids AS uuid[]), CAST(:providers AS text[]),
                             CAST(:languages AS text[])) AS page(device_id, provider, language)
        ON CONFLICT ON CONSTRAINT uq_deliveries_notification_device DO NOTHING
        RETURNING id
    ), page AS (
        SELECT count(*) AS inserted, min(id) AS low_id, max(id) AS high_id FROM inserted
    ), batch AS (
        INSERT INTO delivery_batches (notification_id, low_id, high_id, next_attempt_at, created_at)
        SELECT planned.id, low_id, high_id, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
        FROM planned, page WHERE inserted > 0
    )"""

# ``fan_out_page``'s insert: its caller holds the notification row's lock and updates the row
# through the ORM.
_INSERT_PAGE_SQL = text(
    f"""
    WITH planned AS (SELECT CAST(:nid AS uuid) AS id), {_PAGE_CTES}
    SELECT inserted, low_id, high_id FROM page
    """  # noqa: S608 - a fixed fragment, every value a bind parameter
)

# ``_write_page``'s statement: the page as above and the notification's fan-out state (the
# targeted count, the cursor, "sending", and after the last page the end of the fan-out and,
# when every targeted row is already settled, completion: as ``fan_out_page`` sets them) in one
# statement, which takes the notification row's lock (``planned``) only if the row is still as
# the slice planned: the cursor it last wrote, not finished, not fanned out, not expired.
# Otherwise nothing is written. Two fan-outs of one notification serialise on that lock, and the
# second finds the cursor moved; a cancel or the TTL is seen the same way. Under READ COMMITTED a
# row locked after a wait is read again in its newest version, so ``planned``'s counters are
# those the records wrote meanwhile, and nothing changes them until the commit.
_WRITE_PAGE_SQL = RawStatement(
    f"""
    WITH planned AS (
        SELECT id, targeted, sent + invalid + failed AS settled FROM notifications
        WHERE id = :nid AND fanout_cursor IS NOT DISTINCT FROM CAST(:cursor AS uuid)
          AND fanout_done_at IS NULL AND status NOT IN ('completed', 'expired', 'cancelled')
          AND expires_at > CAST(:now AS timestamptz)
        FOR UPDATE
    ), {_PAGE_CTES}, finished AS (
        SELECT CAST(:last_page AS boolean)
               AND (planned.targeted + page.inserted = 0
                    OR planned.settled >= planned.targeted + page.inserted) AS completed
        FROM planned, page
    ), written AS (
        UPDATE notifications AS n
        SET targeted = n.targeted + page.inserted,
            fanout_cursor = COALESCE(CAST(:last_id AS uuid), n.fanout_cursor),
            fanout_done_at = CASE WHEN CAST(:last_page AS boolean) THEN CAST(:now AS timestamptz)
                                  ELSE n.fanout_done_at END,
            status = CASE WHEN finished.completed THEN 'completed'
                          WHEN CAST(:last_id AS uuid) IS NOT NULL THEN 'sending'
                          ELSE n.status END,
            completed_at = CASE WHEN finished.completed THEN CAST(:now AS timestamptz)
                                ELSE n.completed_at END
        FROM planned, page, finished
        WHERE n.id = planned.id
    )
    SELECT EXISTS (SELECT 1 FROM planned) AS planned, page.inserted, page.low_id, page.high_id FROM page
    """  # noqa: S608 - a fixed fragment, every value a bind parameter
)


async def fan_out(*, notification_id: uuid.UUID, slice_pages: int = SLICE_PAGES) -> int:
    """Fan out for one slice (``slice_pages`` pages or ``SLICE_SECONDS``), a write per page,
    then hand over to a fresh fan-out job, which is backlog. Returns how many pages it wrote. (An
    urgent worker writes one page, the first unless the approval wrote it: workers/roles.py.)

    Pages are written by ``_write_page`` (the notification row locked for one statement only);
    what it leaves alone (the first read finds the notification expired, finished, or a recall
    waiting for its original; a page whose statement finds the notification changed under it)
    goes through ``fan_out_page``, which decides with the row locked."""
    started = time.monotonic()
    pages = 0
    plan = await _plan(notification_id, now=utcnow())
    while True:
        async with committing() as session:
            now = utcnow()
            more = await _write_page(session, plan, now=now) if plan is not None else None
            if more is None:
                plan = None  # from here on, the locking path decides each page
                more = await fan_out_page(session, notification_id=notification_id, now=now)
            pages += 1
            if more and (pages >= slice_pages or time.monotonic() - started > SLICE_SECONDS):
                if plan is not None:
                    cursor, priority = plan.cursor, plan.priority
                else:
                    notification = await session.get(Notification, notification_id)
                    assert notification is not None
                    cursor, priority = notification.fanout_cursor, notification.priority
                defer(
                    session,
                    JobName.FAN_OUT,
                    str(notification_id),
                    job_id=f"{FAN_OUT_MORE_PREFIX}{notification_id}:{cursor}",
                    queue=queue_for(priority),
                )
                return pages
        if not more:
            return pages


@dataclass
class _Plan:
    """What a slice's pages need of their notification, read once (the audience, app, languages,
    sender and priority never change; the cursor is the one this slice last wrote, and each
    page's statement checks it is still the notification's)."""

    notification_id: uuid.UUID
    app: str
    audience: dict[str, Any]
    sender_path: str | None
    languages: frozenset[str]
    priority: str
    expires_at: dt.datetime
    cursor: uuid.UUID | None


async def _plan(notification_id: uuid.UUID, *, now: dt.datetime) -> _Plan | None:
    """The notification as ``_write_page`` needs it, or None when the locking path must decide
    (gone, finished, fanned out, expired, or a recall's retract: see ``fan_out_page``)."""
    async with autocommitted() as session:  # reads: one round trip each
        notification = await session.get(Notification, notification_id)
        if (
            notification is None
            or notification.status in FINAL_STATUSES
            or notification.fanout_done_at is not None
            or notification.expires_at <= now
            or notification.audience.get("recipients_of") is not None
        ):
            return None
        sender_path = None
        if notification.unit_id is not None:
            sender_path = (
                await session.execute(select(Unit.path).where(Unit.id == notification.unit_id))
            ).scalar()
        return _Plan(
            notification_id=notification.id,
            app=notification.app,
            audience=notification.audience,
            sender_path=sender_path,
            languages=frozenset(notification.title),
            priority=notification.priority,
            expires_at=notification.expires_at,
            cursor=notification.fanout_cursor,
        )


async def _write_page(session: AsyncSession, plan: _Plan, *, now: dt.datetime) -> bool | None:
    """The next page, as ``fan_out_page`` writes it, with the notification row locked only by the
    statement that writes (``_WRITE_PAGE_SQL``, on the session's asyncpg connection, committing
    by itself): the chunks' records, which update the same row, no longer queue behind a whole
    page's transaction (its audience read, its insert, the ORM's update and the commit). Returns
    True while more pages remain, False after the last, None when the statement found the
    notification no longer as planned (another fan-out moved its cursor, a cancel, the TTL):
    then it wrote nothing and the caller decides with the row locked (``fan_out_page``)."""
    if plan.expires_at <= now:
        return None
    async with autocommitted() as reader:
        rows = (
            await reader.execute(
                page_query(
                    app=plan.app,
                    audience=plan.audience,
                    sender_unit_path=plan.sender_path,
                    after=plan.cursor,
                    limit=PAGE_SIZE,
                    now=now,
                )
            )
        ).all()
    last_page = len(rows) < PAGE_SIZE
    page = await _WRITE_PAGE_SQL.fetchrow(
        session,
        {
            "nid": plan.notification_id,
            "cursor": plan.cursor,
            "now": now,
            "device_ids": [row.id for row in rows],
            "providers": [row.provider for row in rows],
            "languages": [row.locale if row.locale in plan.languages else DEFAULT_LANGUAGE for row in rows],
            "last_id": rows[-1].id if rows else None,
            "last_page": last_page,
        },
    )
    assert page is not None  # an aggregate: always one row
    if not page["planned"]:
        return None
    first_page = plan.cursor is None
    if rows:
        plan.cursor = rows[-1].id
    if page["inserted"]:
        _queue_send(
            session,
            plan.notification_id,
            plan.priority,
            page["low_id"],
            page["high_id"],
            last_device=rows[-1].id,
            first_page=first_page,
        )
    return not last_page


def _queue_send(
    session: AsyncSession,
    notification_id: uuid.UUID,
    priority: str,
    low_id: int,
    high_id: int,
    *,
    last_device: uuid.UUID,
    first_page: bool,
) -> None:
    """The job that leases this page's batch; a page written twice inserts nothing and its first
    writer already queued the job. A first page's job is not backlog: a worker starts it at once
    and may send it beside the batch it is starting (core/jobs.py)."""
    prefix = FIRST_PAGE_PREFIX if first_page else "send:"
    defer(
        session,
        JobName.SEND_BATCH,
        str(notification_id),
        low_id,
        high_id,
        job_id=f"{prefix}{notification_id}:{last_device.hex}",
        queue=queue_for(priority),
    )
    if first_page:
        # ...and is told at once, not at its next poll (notifications/first_pages.py).
        first_pages.announce_after_commit(
            session, first_pages.FirstPage(notification_id, low_id, queue_for(priority))
        )


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
                    "nid": notification.id,
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
            _queue_send(
                session,
                notification.id,
                notification.priority,
                page.low_id,
                page.high_id,
                last_device=rows[-1].id,
                first_page=first_page,
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
