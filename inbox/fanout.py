"""Writing per-recipient inbox rows for targeted notifications (users, units with their
sub-units, roles, devices), one keyset page of accounts at a time, in a job rather than the
request: a unit tree may hold thousands of accounts. Broadcasts (all, topics) get no rows at all.

Nothing is lost: ``schedule`` records the work (an ``inbox_fanouts`` row) in the notification's
transaction; each page moves its cursor; ``stalled`` finds work whose job was lost (Redis
flushed, worker killed) for the reconciler. Idempotent: ``ON CONFLICT DO NOTHING`` on
(reader, notification), and the progress row is locked per page.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit, User
from core.jobs import BULK_QUEUE, HIGH_QUEUE, JobName, defer
from core.pubsub import publish_after_commit
from devices.models import Device
from inbox import events
from inbox.models import InboxFanout, InboxItem
from notifications.audience import account_filter
from notifications.models import Notification

PAGE_SIZE = 1000
TARGETED_KEYS = ("users", "units", "roles", "devices")


def queue_of(priority: str) -> str:
    return HIGH_QUEUE if priority in ("high", "emergency") else BULK_QUEUE


async def schedule(session: AsyncSession, notifications: Sequence[Notification]) -> None:
    """Called when notifications are created: announce each broadcast to connected readers, and
    record (one INSERT for all) and queue the inbox fan-out of each targeted audience (both
    after commit)."""
    targeted: list[Notification] = []
    for notification in notifications:
        audience = notification.audience
        if audience.get("all") or audience.get("topics"):
            publish_after_commit(
                session, events.app_channel(notification.app), {"type": "item", "id": str(notification.id)}
            )
        if any(audience.get(key) for key in TARGETED_KEYS):
            targeted.append(notification)
    if not targeted:
        return
    await session.execute(
        insert(InboxFanout)
        .values([{"notification_id": notification.id} for notification in targeted])
        .on_conflict_do_nothing()
    )
    for notification in targeted:
        defer(
            session,
            JobName.INBOX_FAN_OUT,
            str(notification.id),
            job_id=f"inbox:{notification.id}",
            queue=queue_of(notification.priority),
        )


async def write_page(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> bool:
    """Write the next page of rows. Returns True while more pages remain. Devices named in the
    audience are written with the first page (at most 10,000 of them)."""
    progress = await session.get(InboxFanout, notification_id, with_for_update=True)
    notification = await session.get(Notification, notification_id)
    if progress is None or progress.done_at is not None or notification is None:
        return False
    audience = notification.audience
    sender_path = None
    if notification.unit_id is not None:
        sender_path = (
            await session.execute(select(Unit.path).where(Unit.id == notification.unit_id))
        ).scalar()
    readers: list[uuid.UUID] = []
    if progress.cursor is None and audience.get("devices"):
        # A device's owner reads it in their account's inbox; an anonymous device in its own.
        readers += (
            await session.execute(
                select(func.coalesce(Device.user_id, Device.id)).where(
                    Device.id.in_([uuid.UUID(d) for d in audience["devices"]]), Device.app == notification.app
                )
            )
        ).scalars()
    query = (
        select(User.id)
        .where(User.is_active.is_(True), account_filter(audience, sender_unit_path=sender_path))
        .order_by(User.id)
        .limit(PAGE_SIZE)
    )
    if progress.cursor is not None:
        query = query.where(User.id > progress.cursor)
    users = list((await session.execute(query)).scalars())
    readers += users
    for start in range(0, len(readers), PAGE_SIZE):
        inserted = await session.execute(
            insert(InboxItem)
            .values(
                [
                    {
                        "reader_id": reader_id,
                        "notification_id": notification.id,
                        "app": notification.app,
                        "created_at": notification.created_at,
                    }
                    for reader_id in readers[start : start + PAGE_SIZE]
                ]
            )
            .on_conflict_do_nothing(constraint="uq_inbox_items_reader_notification")
            .returning(InboxItem.reader_id)
        )
        for reader_id in inserted.scalars():  # only new rows: a page written twice is silent
            publish_after_commit(
                session, events.reader_channel(reader_id), {"type": "item", "id": str(notification.id)}
            )
    progress.updated_at = now
    if len(users) < PAGE_SIZE:
        progress.done_at = now
        return False
    progress.cursor = users[-1]
    return True


async def stalled(session: AsyncSession, *, before: dt.datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
    """Unfinished fan-outs that made no progress since ``before``: (notification id, queue)."""
    rows = (
        await session.execute(
            select(InboxFanout.notification_id, Notification.priority)
            .join(Notification, Notification.id == InboxFanout.notification_id)
            .where(InboxFanout.done_at.is_(None), InboxFanout.updated_at < before)
            .order_by(InboxFanout.updated_at)
            .limit(limit)
        )
    ).all()
    return [(row.notification_id, queue_of(row.priority)) for row in rows]
