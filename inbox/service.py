"""Inbox use cases: list, read one, unread count, read / read-all, archive and unarchive.

Receipts live in inbox/receipts.py, the stream in inbox/stream.py.

Object-level rule: an item is the reader's when they have a per-recipient row for it or it is a
broadcast that matches them; anything else — another user's, another device's, or a made-up
id — is 404, never 403, so ids cannot be probed.

Audit: marking one item read and receipts are the reader's own state and high-volume telemetry,
not shared data, so they are not audited; read-all, archive and unarchive are (few, and they
change what the reader will be shown). Opening the full content of an internal or classified
item is audited (who saw what, D-13).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import and_, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.errors import Forbidden, NotFound
from core.pubsub import publish_after_commit
from inbox import events, pages, queries
from inbox.models import BroadcastState, InboxItem, ReaderMarker
from inbox.queries import Entry, Filters, Marker, Position
from inbox.readers import Reader
from notifications.models import Notification


@dataclass(frozen=True)
class Item:
    notification: Notification | pages.Shown  # a list's rows are ``Shown`` (inbox/pages.py)
    entry: Entry
    read_at: dt.datetime | None  # from the item, its broadcast state, or the read-all marker


def _item(notification: Notification | pages.Shown, entry: Entry, markers: dict[str, Marker]) -> Item:
    read_at = entry.read_at
    marker = markers.get(notification.app)
    if read_at is None and entry.broadcast and marker is not None and marker.covers(entry.position):
        read_at = marker.updated_at
    return Item(notification=notification, entry=entry, read_at=read_at)


async def list_items(
    session: AsyncSession,
    *,
    reader: Reader,
    filters: Filters,
    cursor: str | None,
    limit: int,
    markers: dict[str, Marker] | None = None,
    on_driver: bool = False,
) -> tuple[list[Item], str | None]:
    """``markers``: the reader's read-all markers when the caller read them already (a device's
    are read with its credential, inbox/device_reads.py). ``on_driver``: the page's statement on
    a pooled connection's driver, outside ``session`` (a device's read: autocommit)."""
    if markers is None:
        markers = await queries.load_markers(session, reader)
    before = queries.decode_cursor(cursor) if cursor else None
    rows, more = await pages.page_with_notifications(
        session, reader, filters, markers=markers, before=before, limit=limit, on_driver=on_driver
    )
    items = [_item(notification, entry, markers) for entry, notification in rows]
    next_cursor = queries.encode_cursor(rows[-1][0].position) if more and rows else None
    return items, next_cursor


async def entry_of(session: AsyncSession, reader: Reader, notification_id: uuid.UUID) -> Entry:
    row = (
        await session.execute(
            select(
                InboxItem.notification_id, InboxItem.created_at, InboxItem.read_at, InboxItem.archived_at
            ).where(InboxItem.reader_id == reader.id, InboxItem.notification_id == notification_id)
        )
    ).first()
    if row is not None:
        return Entry(*row, broadcast=False)
    row = (
        await session.execute(
            select(
                Notification.id, Notification.created_at, BroadcastState.read_at, BroadcastState.archived_at
            )
            .outerjoin(BroadcastState, queries._state_join(reader))
            .where(Notification.id == notification_id, queries.broadcast_match(reader))
        )
    ).first()
    if row is None:
        raise NotFound("Inbox item not found")
    return Entry(*row, broadcast=True)


async def get_item(
    session: AsyncSession, *, reader: Reader, notification_id: uuid.UUID, full: bool = False
) -> Item:
    entry = await entry_of(session, reader, notification_id)
    notification = await session.get(Notification, notification_id)
    assert notification is not None
    if full and notification.sensitivity != "public":
        if reader.kind != "user":
            raise Forbidden("Sign in to read internal or classified notifications", code="sign_in_required")
        audit.record(
            session,
            action="inbox.sensitive_viewed",
            object_type="notification",
            object_id=notification_id,
            details={"sensitivity": notification.sensitivity, "kind": notification.kind},
        )
    return _item(notification, entry, await queries.load_markers(session, reader))


async def unread_count(session: AsyncSession, *, reader: Reader, app: str | None) -> int:
    # The markers are read in the count's own statement (one round trip, not two).
    return await queries.unread_count(session, reader, app=app)


async def set_state(
    session: AsyncSession, *, reader: Reader, entry: Entry, column: str, value: dt.datetime | None, keep: bool
) -> None:
    """Set ``read_at`` or ``archived_at`` on the reader's row or broadcast state. ``keep`` keeps
    an earlier time (marking read twice changes nothing)."""
    if not entry.broadcast:
        target = getattr(InboxItem, column)
        await session.execute(
            update(InboxItem)
            .where(InboxItem.reader_id == reader.id, InboxItem.notification_id == entry.notification_id)
            .values({column: func.coalesce(target, value) if keep else value})
        )
        return
    statement = insert(BroadcastState).values(
        reader_id=reader.id, notification_id=entry.notification_id, **{column: value}
    )
    current = getattr(BroadcastState, column)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["reader_id", "notification_id"],
            set_={column: func.coalesce(current, value) if keep else value},
        )
    )


async def mark_read(
    session: AsyncSession, *, reader: Reader, notification_id: uuid.UUID, now: dt.datetime
) -> Item:
    entry = await entry_of(session, reader, notification_id)
    await set_state(session, reader=reader, entry=entry, column="read_at", value=now, keep=True)
    _announce(session, reader, {"type": "read", "id": str(notification_id)})
    return await get_item(session, reader=reader, notification_id=notification_id)


def _announce(session: AsyncSession, reader: Reader, payload: dict[str, object]) -> None:
    """Tell the reader's other connected apps (after commit) so their lists and badges follow."""
    publish_after_commit(session, events.reader_channel(reader.id), payload)


async def set_archived(
    session: AsyncSession, *, reader: Reader, notification_id: uuid.UUID, archived: bool, now: dt.datetime
) -> Item:
    entry = await entry_of(session, reader, notification_id)
    await set_state(
        session,
        reader=reader,
        entry=entry,
        column="archived_at",
        value=now if archived else None,
        keep=archived,
    )
    audit.record(
        session,
        action="inbox.archived" if archived else "inbox.unarchived",
        object_type="notification",
        object_id=notification_id,
        details={"reader": reader.kind},
    )
    _announce(session, reader, {"type": "archived" if archived else "unarchived", "id": str(notification_id)})
    return await get_item(session, reader=reader, notification_id=notification_id)


async def read_all(
    session: AsyncSession,
    *,
    reader: Reader,
    app: str | None,
    up_to: uuid.UUID | None,
    now: dt.datetime,
) -> int:
    """Mark everything (of one app, or all the reader's apps) read, up to and including the item
    ``up_to`` when given. Targeted rows are updated (bounded by the reader's own inbox);
    broadcasts get a marker per app instead of one row each. Returns the unread count after."""
    position: Position | None = None
    if up_to is not None:
        position = (await entry_of(session, reader, up_to)).position
    targeted = update(InboxItem).where(InboxItem.reader_id == reader.id, InboxItem.read_at.is_(None))
    if app is not None:
        targeted = targeted.where(InboxItem.app == app)
    if position is not None:
        targeted = targeted.where(
            tuple_(InboxItem.created_at, InboxItem.notification_id) <= tuple_(*position)
        )
    marked = (await session.execute(targeted.values(read_at=now).returning(InboxItem.id))).all()
    for reader_app in reader.apps:
        if app is not None and reader_app != app:
            continue
        newest = (
            await session.execute(
                select(Notification.created_at, Notification.id)
                .where(queries.broadcast_match(reader, app=reader_app))
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(1)
            )
        ).first()
        if newest is None:
            continue
        target: Position = (newest.created_at, newest.id)
        if position is not None:
            target = min(target, position)
        await _move_marker(session, reader=reader, app=reader_app, position=target, now=now)
    audit.record(
        session,
        action="inbox.read_all",
        object_type="inbox",
        object_id=reader.id,
        details={"app": app, "up_to": str(up_to) if up_to else None, "items": len(marked)},
    )
    unread = await unread_count(session, reader=reader, app=app)
    _announce(session, reader, {"type": "read_all", "app": app, "up_to": str(up_to) if up_to else None})
    return unread


async def _move_marker(
    session: AsyncSession, *, reader: Reader, app: str, position: Position, now: dt.datetime
) -> None:
    statement = insert(ReaderMarker).values(
        reader_id=reader.id,
        app=app,
        read_up_to_created_at=position[0],
        read_up_to_id=position[1],
        updated_at=now,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["reader_id", "app"],
            set_={
                "read_up_to_created_at": excluded.read_up_to_created_at,
                "read_up_to_id": excluded.read_up_to_id,
                "updated_at": excluded.updated_at,
            },
            # Only forward: a late "read all up to an older item" never un-reads anything.
            where=and_(
                tuple_(ReaderMarker.read_up_to_created_at, ReaderMarker.read_up_to_id)
                < tuple_(excluded.read_up_to_created_at, excluded.read_up_to_id)
            ),
        )
    )
