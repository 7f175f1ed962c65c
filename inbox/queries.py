"""The SQL of the inbox: the two sources of one reader's inbox (their per-recipient rows and the
broadcasts that match them), both in one order — (created_at, notification id), newest first —
so that a page of each can be merged and paginated with one keyset cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadRequest
from inbox.models import BROADCAST_SQL, BroadcastState, InboxItem, ReaderMarker
from inbox.readers import Reader
from notifications.models import Notification

Position = tuple[dt.datetime, uuid.UUID]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CURSOR_PREFIX = "inbox"
_ALL_READERS = literal_column("""'{"all": true}'::jsonb""", JSONB)


def encode_cursor(position: Position) -> str:
    created_at, notification_id = position
    micros = (created_at - _EPOCH) // dt.timedelta(microseconds=1)
    raw = f"{_CURSOR_PREFIX}:{micros}:{notification_id.hex}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, micros, hex_id = raw.split(":")
        if prefix != _CURSOR_PREFIX or not micros.isdigit() or len(micros) > 17 or len(hex_id) != 32:
            raise ValueError(raw)
        return _EPOCH + dt.timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError) as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc


@dataclass(frozen=True)
class Marker:
    position: Position
    updated_at: dt.datetime

    def covers(self, position: Position) -> bool:
        return position <= self.position


@dataclass(frozen=True)
class Entry:
    """One inbox entry before its content is rendered."""

    notification_id: uuid.UUID
    created_at: dt.datetime
    read_at: dt.datetime | None
    archived_at: dt.datetime | None
    broadcast: bool

    @property
    def position(self) -> Position:
        return (self.created_at, self.notification_id)


@dataclass(frozen=True)
class Filters:
    app: str | None = None
    kind: str | None = None
    since: dt.datetime | None = None
    unread: bool = False
    archived: bool = False


async def load_markers(session: AsyncSession, reader: Reader) -> dict[str, Marker]:
    rows = (await session.execute(select(ReaderMarker).where(ReaderMarker.reader_id == reader.id))).scalars()
    return {
        row.app: Marker(position=(row.read_up_to_created_at, row.read_up_to_id), updated_at=row.updated_at)
        for row in rows
    }


def _after(position: Position) -> ColumnElement[bool]:
    return tuple_(Notification.created_at, Notification.id) > tuple_(
        literal(position[0]), literal(position[1])
    )


def broadcast_match(
    reader: Reader, *, app: str | None = None, markers: dict[str, Marker] | None = None
) -> ColumnElement[bool]:
    """Broadcasts in the reader's inbox: of an app they have, created since they arrived, to all
    readers or to a topic they follow. With ``markers``, only those after the read-all marker."""
    per_app = []
    for reader_app in reader.apps:
        if app is not None and reader_app != app:
            continue
        match: ColumnElement[bool] = Notification.audience.contains(_ALL_READERS)
        topics = reader.subscriptions[reader_app]
        if topics:
            match = or_(match, Notification.audience["topics"].has_any(array(topics)))
        clause = and_(Notification.app == reader_app, match)
        if markers is not None and reader_app in markers:
            clause = and_(clause, _after(markers[reader_app].position))
        per_app.append(clause)
    if not per_app:
        return false()
    # The literal predicate lets PostgreSQL use the partial index ix_notifications_broadcast.
    return and_(text(BROADCAST_SQL), Notification.created_at >= reader.since, or_(*per_app))


def _not_targeted(reader: Reader) -> ColumnElement[bool]:
    # A notification both broadcast and targeted at the reader appears once, as their own row.
    return ~exists().where(InboxItem.reader_id == reader.id, InboxItem.notification_id == Notification.id)


def _state_join(reader: Reader) -> ColumnElement[bool]:
    return and_(BroadcastState.reader_id == reader.id, BroadcastState.notification_id == Notification.id)


def targeted_page(
    reader: Reader, filters: Filters, *, before: Position | None, limit: int
) -> Select[uuid.UUID, dt.datetime, dt.datetime | None, dt.datetime | None]:
    query = select(
        InboxItem.notification_id, InboxItem.created_at, InboxItem.read_at, InboxItem.archived_at
    ).where(
        InboxItem.reader_id == reader.id,
        InboxItem.archived_at.is_not(None) if filters.archived else InboxItem.archived_at.is_(None),
    )
    if filters.app is not None:
        query = query.where(InboxItem.app == filters.app)
    if filters.kind is not None:
        query = query.join(Notification, Notification.id == InboxItem.notification_id).where(
            Notification.kind == filters.kind
        )
    if filters.since is not None:
        query = query.where(InboxItem.created_at >= filters.since)
    if filters.unread:
        query = query.where(InboxItem.read_at.is_(None))
    if before is not None:
        query = query.where(
            tuple_(InboxItem.created_at, InboxItem.notification_id)
            < tuple_(literal(before[0]), literal(before[1]))
        )
    return query.order_by(InboxItem.created_at.desc(), InboxItem.notification_id.desc()).limit(limit)


def broadcast_page(
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
) -> Select[uuid.UUID, dt.datetime, dt.datetime | None, dt.datetime | None]:
    query = (
        select(Notification.id, Notification.created_at, BroadcastState.read_at, BroadcastState.archived_at)
        .outerjoin(BroadcastState, _state_join(reader))
        .where(
            broadcast_match(reader, app=filters.app, markers=markers if filters.unread else None),
            _not_targeted(reader),
            BroadcastState.archived_at.is_not(None)
            if filters.archived
            else BroadcastState.archived_at.is_(None),
        )
    )
    if filters.kind is not None:
        query = query.where(Notification.kind == filters.kind)
    if filters.since is not None:
        query = query.where(Notification.created_at >= filters.since)
    if filters.unread:
        query = query.where(BroadcastState.read_at.is_(None))
    if before is not None:
        query = query.where(
            tuple_(Notification.created_at, Notification.id) < tuple_(literal(before[0]), literal(before[1]))
        )
    return query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)


async def page(
    session: AsyncSession,
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
) -> tuple[list[Entry], bool]:
    """Up to ``limit`` entries older than ``before``, and whether more follow. Each source is
    read in the same order with the same bound, so the merge neither skips nor repeats."""
    targeted = (await session.execute(targeted_page(reader, filters, before=before, limit=limit + 1))).all()
    broadcasts = (
        await session.execute(
            broadcast_page(reader, filters, markers=markers, before=before, limit=limit + 1)
        )
    ).all()
    entries = [Entry(*row, broadcast=False) for row in targeted] + [
        Entry(*row, broadcast=True) for row in broadcasts
    ]
    entries.sort(key=lambda entry: entry.position, reverse=True)
    return entries[:limit], len(entries) > limit


async def unread_count(
    session: AsyncSession, reader: Reader, *, app: str | None, markers: dict[str, Marker]
) -> int:
    """Two indexed counts: the reader's unread rows (partial index ix_inbox_items_unread), and the
    matching broadcasts after their read-all marker (range scan of ix_notifications_broadcast)
    that they have neither read nor archived."""
    targeted = select(func.count()).where(
        InboxItem.reader_id == reader.id, InboxItem.read_at.is_(None), InboxItem.archived_at.is_(None)
    )
    if app is not None:
        targeted = targeted.where(InboxItem.app == app)
    broadcasts = (
        select(func.count())
        .select_from(Notification)
        .outerjoin(BroadcastState, _state_join(reader))
        .where(
            broadcast_match(reader, app=app, markers=markers),
            _not_targeted(reader),
            BroadcastState.read_at.is_(None),
            BroadcastState.archived_at.is_(None),
        )
    )
    return int((await session.execute(targeted)).scalar_one()) + int(
        (await session.execute(broadcasts)).scalar_one()
    )
