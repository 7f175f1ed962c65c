"""The SQL of the inbox: the two sources of one reader's inbox (their per-recipient rows and the
broadcasts that match them), both in one order — (created_at, notification id), newest first —
so that a page of each can be merged and paginated with one keyset cursor."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    String,
    and_,
    bindparam,
    exists,
    false,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, array
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from core.clock import utcnow
from core.errors import BadRequest
from inbox.models import BROADCAST_SQL, BroadcastState, InboxItem, ReaderMarker
from inbox.readers import Reader
from inbox.window import broadcast_window, fingerprint_sql, window_bound
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


_UUID = UUID(as_uuid=True)
_TIME = DateTime(timezone=True)
_TOPICS = ARRAY(String)


class _Values:
    """Where a statement's values go: into the statement (``LITERAL``, the default), or named bind
    parameters (``BOUND``), so that one statement per *shape* can be built once and reused with
    ``_page_values`` (``_merged_page``): building a page's statement cost more CPU than running it."""

    def __init__(self, *, bound: bool) -> None:
        self.bound = bound

    def __call__(self, name: str, value: object, type_: TypeEngine[Any]) -> Any:
        return bindparam(name, type_=type_) if self.bound else literal(value, type_)


LITERAL, BOUND = _Values(bound=False), _Values(bound=True)


def _after(position: Position, *, values: _Values = LITERAL, name: str = "marker") -> ColumnElement[bool]:
    return tuple_(Notification.created_at, Notification.id) > tuple_(
        values(f"{name}_at", position[0], _TIME), values(f"{name}_id", position[1], _UUID)
    )


def broadcast_match(
    reader: Reader,
    *,
    app: str | None = None,
    markers: dict[str, Marker] | None = None,
    values: _Values = LITERAL,
) -> ColumnElement[bool]:
    """Broadcasts in the reader's inbox: of an app they have, created since they arrived, to all
    readers or to a topic they follow. With ``markers``, only those after the read-all marker."""
    per_app = []
    for number, reader_app in enumerate(reader.apps):
        if app is not None and reader_app != app:
            continue
        match: ColumnElement[bool] = Notification.audience.contains(_ALL_READERS)
        topics = reader.subscriptions[reader_app]
        if topics:
            listed = bindparam(f"topics_{number}", type_=_TOPICS) if values.bound else array(topics)
            match = or_(match, Notification.audience["topics"].has_any(listed))
        clause = and_(Notification.app == reader_app, match)
        if markers is not None and reader_app in markers:
            position = markers[reader_app].position
            clause = and_(clause, _after(position, values=values, name=f"marker_{number}"))
        per_app.append(clause)
    if not per_app:
        return false()
    # The literal predicate lets PostgreSQL use the partial index ix_notifications_broadcast.
    since = values("since", reader.since, _TIME)
    return and_(text(BROADCAST_SQL), Notification.created_at >= since, or_(*per_app))


def _not_targeted(reader: Reader, values: _Values = LITERAL) -> ColumnElement[bool]:
    # A notification both broadcast and targeted at the reader appears once, as their own row.
    reader_id = values("reader_id", reader.id, _UUID)
    return ~exists().where(InboxItem.reader_id == reader_id, InboxItem.notification_id == Notification.id)


def _state_join(reader: Reader, values: _Values = LITERAL) -> ColumnElement[bool]:
    reader_id = values("reader_id", reader.id, _UUID)
    return and_(BroadcastState.reader_id == reader_id, BroadcastState.notification_id == Notification.id)


def targeted_page(
    reader: Reader, filters: Filters, *, before: Position | None, limit: int, values: _Values = LITERAL
) -> Select[uuid.UUID, dt.datetime, dt.datetime | None, dt.datetime | None]:
    query = select(
        InboxItem.notification_id, InboxItem.created_at, InboxItem.read_at, InboxItem.archived_at
    ).where(
        InboxItem.reader_id == values("reader_id", reader.id, _UUID),
        InboxItem.archived_at.is_not(None) if filters.archived else InboxItem.archived_at.is_(None),
    )
    if filters.app is not None:
        query = query.where(InboxItem.app == filters.app)
    if filters.kind is not None:
        query = query.join(Notification, Notification.id == InboxItem.notification_id).where(
            Notification.kind == values("kind", filters.kind, String())
        )
    if filters.since is not None:
        query = query.where(InboxItem.created_at >= values("filter_since", filters.since, _TIME))
    if filters.unread:
        query = query.where(InboxItem.read_at.is_(None))
    if before is not None:
        query = query.where(
            tuple_(InboxItem.created_at, InboxItem.notification_id)
            < tuple_(values("before_at", before[0], _TIME), values("before_id", before[1], _UUID))
        )
    return query.order_by(InboxItem.created_at.desc(), InboxItem.notification_id.desc()).limit(limit)


def broadcast_page(
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
    floor: dt.datetime | None = None,
    values: _Values = LITERAL,
) -> Select[uuid.UUID, dt.datetime, dt.datetime | None, dt.datetime | None]:
    query = (
        select(Notification.id, Notification.created_at, BroadcastState.read_at, BroadcastState.archived_at)
        .outerjoin(BroadcastState, _state_join(reader, values))
        .where(
            broadcast_match(
                reader, app=filters.app, markers=markers if filters.unread else None, values=values
            ),
            _not_targeted(reader, values),
            BroadcastState.archived_at.is_not(None)
            if filters.archived
            else BroadcastState.archived_at.is_(None),
        )
    )
    if filters.kind is not None:
        query = query.where(Notification.kind == values("kind", filters.kind, String()))
    if filters.since is not None:
        query = query.where(Notification.created_at >= values("filter_since", filters.since, _TIME))
    if filters.unread:
        query = query.where(BroadcastState.read_at.is_(None))
    if before is not None:
        query = query.where(
            tuple_(Notification.created_at, Notification.id)
            < tuple_(values("before_at", before[0], _TIME), values("before_id", before[1], _UUID))
        )
    if floor is not None:
        query = query.where(Notification.created_at >= values("floor", floor, _TIME))
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


# --- the unread count -------------------------------------------------------------------
#
# unread = the reader's unread own rows (an index-only count over ix_inbox_items_unread)
#        + the matching broadcasts after their read-all marker that they have neither read nor
#          archived one by one, nor also have as an own row.
#
# The second term used to be a SQL count over every broadcast of the 90-day window (a range scan
# of ix_notifications_broadcast with a heap fetch and two probes per broadcast, re-planned on
# every call: ~3 ms of PostgreSQL per request with 1,000 broadcasts). Now it is a binary search
# in the process's in-memory window (inbox/window.py), checked by its fingerprint in the same
# statement that reads the own-row count, the markers and the reader's exceptions.


async def unread_count(
    session: AsyncSession,
    reader: Reader,
    *,
    app: str | None,
    markers: dict[str, Marker] | None = None,
    now: dt.datetime | None = None,
) -> int:
    """One statement — own unread rows, the read-all markers (unless given), the broadcasts the
    reader took out one by one, and the fingerprint of each app's window — then the broadcasts
    are counted in memory (see above)."""
    apps = [a for a in reader.apps if app is None or a == app]
    now = now or utcnow()
    bound = window_bound(now)
    params: dict[str, object] = {"reader": reader.id, "since": reader.since, "bound": bound}
    own_filter = ""
    if app is not None:
        own_filter, params["app"] = " AND app = :app", app
    fingerprints = []
    for number, reader_app in enumerate(apps):
        params[f"app_{number}"] = reader_app
        fingerprints.append(fingerprint_sql(f"app_{number}", "bound"))
    statement = f"""
        SELECT
          (SELECT count(*) FROM inbox_items WHERE reader_id = :reader AND read_at IS NULL
             AND archived_at IS NULL{own_filter}) AS own,
          {MARKERS_JSON.format(reader=":reader")} AS markers,
          {SKIP_IDS.format(reader=":reader", since=":since")} AS skip
          {"".join(f", {sql} AS window_{number}" for number, sql in enumerate(fingerprints))}
    """  # noqa: S608 (constants and bound parameters only)
    row = (
        await session.execute(
            text(statement).bindparams(bindparam("reader", type_=UUID(as_uuid=True))), params
        )
    ).one()
    if markers is None:
        markers = markers_of(row.markers)
    windows = {reader_app: row[3 + number] for number, reader_app in enumerate(apps)}
    return int(row.own) + await unread_broadcasts(
        session, reader, markers=markers, skip=set(row.skip), fingerprints=windows, now=now
    )


# The broadcasts a reader took out of the count one by one (read or archived), or also has as an
# own row: their ids as one array value, for SQL expressions ``reader`` and ``since``.
# (Constants; the callers format in SQL expressions, never values.)
SKIP_IDS = (
    "ARRAY(SELECT s.notification_id FROM broadcast_states s "  # noqa: S608
    "JOIN notifications n ON n.id = s.notification_id AND n.created_at >= {since} "
    "WHERE s.reader_id = {reader} AND (s.read_at IS NOT NULL OR s.archived_at IS NOT NULL) "
    "UNION ALL "
    "SELECT i.notification_id FROM inbox_items i JOIN notifications n ON n.id = i.notification_id "
    "WHERE i.reader_id = {reader} AND i.created_at >= {since} AND "
    + BROADCAST_SQL.replace("audience", "n.audience").replace("{", "{{").replace("}", "}}")
    + ")"
)

# The read-all markers as one JSON value (a column of a larger statement), for ``markers_of``.
MARKERS_JSON = (
    "(SELECT coalesce(json_agg(json_build_array(m.app, m.read_up_to_created_at, m.read_up_to_id, "
    "m.updated_at)), '[]') FROM reader_markers m WHERE m.reader_id = {reader})"
)


def markers_of(entries: list[list[str]]) -> dict[str, Marker]:
    """The markers from ``MARKERS_JSON``'s value."""
    return {
        entry[0]: Marker(
            position=(dt.datetime.fromisoformat(entry[1]), uuid.UUID(entry[2])),
            updated_at=dt.datetime.fromisoformat(entry[3]),
        )
        for entry in entries
    }


async def unread_broadcasts(
    session: AsyncSession,
    reader: Reader,
    *,
    markers: dict[str, Marker],
    skip: set[uuid.UUID],
    fingerprints: dict[str, list[int | None]],
    now: dt.datetime,
) -> int:
    """The unread broadcasts of the apps in ``fingerprints`` (each app's window fingerprint as
    the caller's statement read it), counted in the in-memory windows."""
    count = 0
    for reader_app, fingerprint in fingerprints.items():
        window = await broadcast_window(session, app=reader_app, now=now, fingerprint=fingerprint)
        marker = markers.get(reader_app)
        count += window.unread(
            topics=frozenset(reader.subscriptions[reader_app]),
            since=reader.since,
            marker=marker.position if marker is not None else None,
            skip=skip,
        )
    return count
