"""The first and later pages of an inbox with their notifications, in one statement (see
``page_with_notifications``), built once per shape of the request and reused with bound values.

A page reads only the notifications' columns a list shows (``Shown``), not ORM objects: loading
21 ``Notification`` objects (identity map, instrumented attributes) was most of a first page's
API CPU. A device's page runs on a pooled connection's driver (core/pooled_driver.py), like its
credential's statement: compiled once per shape for asyncpg, no session work at all; on a driver
error it runs again through the session, which classifies the failure as everywhere else."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Select, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from core import pooled_driver
from core.clock import utcnow
from core.db import get_engine
from core.logging import get_logger
from inbox.queries import BOUND, Entry, Filters, Marker, Position, broadcast_page, targeted_page
from inbox.readers import Reader
from inbox.window import WINDOWS, broadcast_window, window_bound
from notifications.models import Notification

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Shown:
    """What a list shows of a notification (inbox/schemas.py ``render``), by the model's names."""

    id: uuid.UUID
    app: str
    kind: str
    priority: str
    sensitivity: str
    title: dict[str, str]
    body: dict[str, str]
    data: dict[str, str]
    deep_link: str | None
    withdrawn_at: dt.datetime | None


# ``Shown``'s columns, in its fields' order (a row's first values).
_SHOWN = (
    Notification.id,
    Notification.app,
    Notification.kind,
    Notification.priority,
    Notification.sensitivity,
    Notification.title,
    Notification.body,
    Notification.data,
    Notification.deep_link,
    Notification.withdrawn_at,
)


async def page_with_notifications(
    session: AsyncSession,
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
    on_driver: bool = False,
) -> tuple[list[tuple[Entry, Shown]], bool]:
    """``page`` and the notifications' rows in one statement: both sources, each with its own
    keyset bound and limit (so each still uses its index), merged in SQL and joined to their
    notifications — one round trip instead of three.

    The broadcast source is also bounded below by a *floor* read from the in-memory window: the
    time of the ``limit + 1``-th newest broadcast that could be the reader's. Without it the
    planner, which cannot estimate the audience (JSONB) predicates, reads every broadcast of the
    window and sorts them (5 ms with 1,000); with it, a short index range (0.4 ms). The floor only
    ever leaves out broadcasts older than it, so when the merged page still ends at or above it
    the page is exact; otherwise (many of those broadcasts were read, archived, of another kind…)
    the statement runs again without it.

    ``on_driver``: run it on a pooled connection's driver, not on ``session`` (a device's read
    with an autocommit session: no transaction to be part of)."""
    floor = await _broadcast_floor(session, reader, filters, markers=markers, before=before, limit=limit)

    async def page(floor: dt.datetime | None) -> list[tuple[Entry, Shown]]:
        return await _merged_page(
            session,
            reader,
            filters,
            markers=markers,
            before=before,
            limit=limit,
            floor=floor,
            on_driver=on_driver,
        )

    found = await page(floor)
    if floor is not None and (len(found) <= limit or found[limit][0].created_at < floor):
        found = await page(None)
    return found[:limit], len(found) > limit


async def _broadcast_floor(
    session: AsyncSession,
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
) -> dt.datetime | None:
    if filters.archived:
        return None  # the archive holds the reader's archived broadcasts, however old
    floors = []
    for reader_app in reader.apps:
        if filters.app is not None and reader_app != filters.app:
            continue
        window = WINDOWS.get(reader_app)
        if window is None or window.bound != window_bound(utcnow()):
            window = await broadcast_window(session, app=reader_app, now=utcnow())
        oldest = max(reader.since, filters.since or reader.since)
        marker = markers.get(reader_app) if filters.unread else None
        floors.append(
            window.floor(
                topics=frozenset(reader.subscriptions[reader_app]),
                since=oldest,
                before=before,
                after=marker.position if marker is not None else None,
                count=limit + 1,
            )
        )
    if not floors or any(floor is None for floor in floors):
        return None
    return min(floor for floor in floors if floor is not None)


async def _merged_page(
    session: AsyncSession,
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
    floor: dt.datetime | None,
    on_driver: bool,
) -> list[tuple[Entry, Shown]]:
    apps = tuple(reader.apps)
    shape = (
        apps,
        tuple(bool(reader.subscriptions[app]) for app in apps),
        tuple(app in markers for app in apps) if filters.unread else (),
        filters.app,
        filters.kind is not None,
        filters.since is not None,
        filters.unread,
        filters.archived,
        before is not None,
        floor is not None,
        limit,
    )
    statement = _PAGES.get(shape)
    if statement is None:
        if len(_PAGES) >= _MAX_PAGE_SHAPES:  # many shapes (filters × apps): keep memory bounded
            _PAGES.clear()
        statement = _PAGES[shape] = _merged_statement(
            reader, filters, markers=markers, before=before, limit=limit, floor=floor
        )
    values = _page_values(reader, filters, markers=markers, before=before, floor=floor)
    rows: Sequence[Sequence[Any]] | None = None
    if on_driver:
        rows = await _on_driver(shape, statement, values)
    if rows is None:
        rows = (await session.execute(statement, values)).all()
    shown = len(_SHOWN)
    return [
        (
            Entry(
                notification_id=row[0],
                created_at=row[shown],
                read_at=row[shown + 1],
                archived_at=row[shown + 2],
                broadcast=bool(row[shown + 3]),
            ),
            Shown(*row[:shown]),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class _Compiled:
    """A page's statement as asyncpg runs it: SQLAlchemy's own SQL for this dialect, and how to
    make its positional parameters from the named values (the statement's own for the rest: its
    literals and the limit), each through the dialect's bind processor when it has one."""

    sql: str
    parameters: tuple[tuple[str, object, Callable[[Any], Any] | None], ...]

    def arguments(self, values: dict[str, object]) -> list[object]:
        arguments = []
        for name, default, process in self.parameters:
            value = values.get(name, default)
            arguments.append(process(value) if process is not None and value is not None else value)
        return arguments


def _compiled(statement: Select[Any]) -> _Compiled | None:
    """None if the statement is not one SQL text with positional parameters (parameters rendered
    at execution, ``POSTCOMPILE``): it then runs through the session."""
    compiled = statement.compile(dialect=get_engine().dialect)
    names = compiled.positiontup
    if names is None or "POSTCOMPILE" in compiled.string:
        return None
    defaults = compiled.params
    processors: Mapping[str, Any] = compiled._bind_processors
    return _Compiled(
        sql=compiled.string,
        parameters=tuple((name, defaults.get(name), processors.get(name)) for name in names),
    )


_COMPILED: dict[tuple[object, ...], _Compiled | None] = {}


async def _on_driver(
    shape: tuple[object, ...], statement: Select[Any], values: dict[str, object]
) -> Sequence[Sequence[Any]] | None:
    """The page's rows from a pooled connection's driver; None if the driver failed (the caller
    runs it through the session, which classifies the failure)."""
    if shape not in _COMPILED:
        if len(_COMPILED) >= _MAX_PAGE_SHAPES:
            _COMPILED.clear()
        _COMPILED[shape] = _compiled(statement)
    compiled = _COMPILED[shape]
    if compiled is None:
        return None
    try:
        rows: Sequence[Sequence[Any]] = await pooled_driver.fetch(compiled.sql, compiled.arguments(values))
    except pooled_driver.DriverFailed as exc:
        log.debug("inbox_page_driver_failed", error=str(exc))
        return None
    return rows


# Statements of the merged page by shape (the reader's apps and which follow topics, which
# filters are set, the limit…), their values bound by name (``_page_values``).
_PAGES: dict[tuple[object, ...], Select[Any]] = {}
_MAX_PAGE_SHAPES = 512


def _merged_statement(
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    limit: int,
    floor: dt.datetime | None,
) -> Select[Any]:
    own = targeted_page(reader, filters, before=before, limit=limit + 1, values=BOUND).subquery("own")
    shared = broadcast_page(
        reader, filters, markers=markers, before=before, limit=limit + 1, floor=floor, values=BOUND
    ).subquery("shared")
    merged = union_all(
        select(
            own.c.notification_id.label("nid"),
            own.c.created_at.label("position"),
            own.c.read_at.label("state_read_at"),
            own.c.archived_at.label("state_archived_at"),
            literal(False).label("is_broadcast"),
        ),
        select(shared.c.id, shared.c.created_at, shared.c.read_at, shared.c.archived_at, literal(True)),
    ).subquery("merged")
    return cast(  # of more columns than the typing of ``select`` spells out
        Select[Any],
        select(
            *_SHOWN,
            merged.c.position,
            merged.c.state_read_at,
            merged.c.state_archived_at,
            merged.c.is_broadcast,
        )
        .join(merged, Notification.id == merged.c.nid)
        .order_by(merged.c.position.desc(), merged.c.nid.desc())
        .limit(limit + 1),
    )


def _page_values(
    reader: Reader,
    filters: Filters,
    *,
    markers: dict[str, Marker],
    before: Position | None,
    floor: dt.datetime | None,
) -> dict[str, object]:
    """The values ``_merged_statement``'s bound parameters take, by the same names."""
    values: dict[str, object] = {"reader_id": reader.id, "since": reader.since}
    for number, app in enumerate(reader.apps):
        values[f"topics_{number}"] = reader.subscriptions[app]
        if app in markers:
            values[f"marker_{number}_at"], values[f"marker_{number}_id"] = markers[app].position
    if filters.kind is not None:
        values["kind"] = filters.kind
    if filters.since is not None:
        values["filter_since"] = filters.since
    if before is not None:
        values["before_at"], values["before_id"] = before
    if floor is not None:
        values["floor"] = floor
    return values
