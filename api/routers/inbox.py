"""The in-app inbox of a signed-in user or an anonymous portal device (docs/inbox.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

import orjson
from anyio import CancelScope
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse

from api.deps import (
    Authenticated,
    DeviceColumns,
    SessionDep,
    deny,
    device_read,
    is_device_credential,
    read_only_with,
    request_session,
    still_authenticated,
)
from api.rendered import rendered, rendered_json
from api.sse import event_stream, require_event_stream
from api.surge import FastPath, SurgeRoute, fast_path
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.schemas import Page
from core.types import BoundedDatetime
from devices import apps
from devices.app_schemas import AppCode
from inbox import device_reads, receipts
from inbox import service as inbox_service
from inbox import stream as inbox_stream
from inbox.queries import Filters, decode_cursor
from inbox.readers import Reader, reader_of
from inbox.schemas import InboxItemOut, ReadAll, ReceiptIn, ReceiptOut, UnreadCount, render

router = APIRouter(tags=["inbox"], route_class=SurgeRoute)


class InboxReader(Authenticated):
    """A signed-in user (or their delegate) or a device credential, holding ``inbox:read``."""

    def __init__(self) -> None:
        super().__init__(allow_device=True)
        self.description = Permission.INBOX_READ.value

    async def check(self, request: Request, principal: Principal) -> None:
        await super().check(request, principal)
        if not principal.has(Permission.INBOX_READ):
            raise await deny(
                request,
                code="permission_denied",
                message="You do not have permission",
                missing=["inbox:read"],
            )


Caller = Depends(InboxReader())


async def _reader(session: SessionDep, principal: Principal = Caller) -> Reader:
    return await reader_of(session, principal=principal, now=utcnow())


ReaderDep = Annotated[Reader, Depends(_reader)]


@dataclass(frozen=True)
class InboxRead:
    """What a read of the inbox runs with: the request's session and the caller's reader."""

    session: AsyncSession
    reader: Reader


class InboxReading(InboxReader):
    """``InboxReader``, the request's session and the caller's reader as one dependency, for the
    read surge's routes (the unread count and the list): FastAPI does work per dependency on
    every request (its parameters, cache key, exit stack), and this FastAPI's routing and
    dependency solving were about a third of a device's unread count with the three (session,
    policy, reader) solved apart. The session is ``api.deps.request_session``'s, with the same
    transaction rules."""

    async def __call__(self, request: Request) -> AsyncIterator[InboxRead]:  # type: ignore[override]
        async with self.reading(request) as read:
            yield read

    @asynccontextmanager
    async def reading(self, request: Request) -> AsyncIterator[InboxRead]:
        async with request_session(request) as session:
            principal = await self.authorize(request, session)
            reader = await reader_of(session, principal=principal, now=utcnow())
            yield InboxRead(session=session, reader=reader)


_READING = InboxReading()
Reading = Annotated[InboxRead, Depends(_READING, scope="function")]


def _device_read(endpoint: Callable[..., Awaitable[Response]]) -> FastPath:
    """A device's read without FastAPI's per-request solving (api/surge.py): ``_READING``'s
    session, policy and reader around the endpoint, as the dependency would run them (its exit,
    the session's end, shielded from cancellation as FastAPI shields a dependency's), with the
    query values read from the route's own fields. Signed-in callers take the standard path."""

    async def run(request: Request, values: dict[str, Any]) -> Response:
        with CancelScope() as cleanup:
            async with _READING.reading(request) as read:
                try:
                    return await endpoint(request=request, read=read, **values)
                finally:
                    cleanup.shield = True
        raise AssertionError("unreachable")  # pragma: no cover (a cancel scope cannot swallow here)

    return FastPath(serves=is_device_credential, run=run)


Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


def device_fast_path(endpoint: Endpoint) -> Endpoint:
    """Mark a surge read (``request``, ``read: Reading`` and query parameters) for ``_device_read``."""
    return fast_path(_device_read(endpoint))(endpoint)


async def _known_app(session: AsyncSession, app: str | None) -> None:
    """An app filter names an app (422 ``unknown_app`` otherwise); a disabled app's inbox
    still reads: what it received stays its readers'. From the in-process copy: no query."""
    if app is not None:
        await apps.require(session, app, enabled=False)


# What a device's first page and unread count read with its credential's row (one statement).
_MARKERS = DeviceColumns(columns=lambda first: [device_reads.MARKERS], parameters=lambda now: ())
_UNREAD = DeviceColumns(columns=device_reads.unread_columns, parameters=device_reads.unread_parameters)


@router.get("", response_model=Page[InboxItemOut])
@read_only_with(_MARKERS)
@device_fast_path
async def list_inbox(
    request: Request,
    read: Reading,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    unread: Annotated[bool, Query(description="only unread items")] = False,
    archived: Annotated[bool, Query(description="the archive instead of the inbox")] = False,
    app: AppCode | None = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")] = None,
    since: Annotated[BoundedDatetime | None, Query(description="created at or after; with an offset")] = None,
) -> Response:
    """Newest first, merged from the caller's own items and the broadcasts that match them."""
    session, reader = read.session, read.reader
    await _known_app(session, app)
    filters = Filters(app=app, kind=kind, since=since, unread=unread, archived=archived)
    device = device_read(request)
    items, next_cursor = await inbox_service.list_items(
        session,
        reader=reader,
        filters=filters,
        cursor=cursor,
        limit=limit,
        markers=device_reads.markers(device.row) if device is not None else None,
        # A device's read has no transaction: its page on a pooled connection's driver too.
        on_driver=device is not None,
    )
    page = Page[InboxItemOut](
        items=[render(item, language=reader.language, full=False) for item in items], next_cursor=next_cursor
    )
    return rendered(page)


@router.get("/unread-count", response_model=UnreadCount)
@read_only_with(_UNREAD)
@device_fast_path
async def unread_count(request: Request, read: Reading, app: AppCode | None = None) -> Response:
    """Unread, not archived items (the same number is the badge of pushes)."""
    session, reader = read.session, read.reader
    await _known_app(session, app)
    device = device_read(request)
    if device is not None:  # read with the device credential's row
        count = await device_reads.unread_count(
            session, reader=reader, app=app, row=device.row, now=device.now
        )
    else:
        count = await inbox_service.unread_count(session, reader=reader, app=app)
    return rendered_json(orjson.dumps({"unread": count}))


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream(
    request: Request,
    reader: ReaderDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=512)] = None,
) -> Response:
    """Server-Sent Events: ``item`` (a new item, in the list's form; its ``id`` is a cursor),
    ``read``, ``read_all``, ``archived``, ``unarchived``, ``unread`` (the count, on connect),
    heartbeats. Send ``Accept: text/event-stream``; reconnect with ``Last-Event-ID`` to replay."""
    require_event_stream(request)
    after = decode_cursor(last_event_id) if last_event_id else None
    slot = await inbox_stream.admit(reader)
    return event_stream(
        inbox_stream.stream(
            reader, after=after, still_allowed=partial(still_authenticated, request), slot=slot
        ),
        heartbeat_seconds=inbox_stream.HEARTBEAT_SECONDS,
    )


@router.post("/read-all", response_model=UnreadCount)
async def read_all(session: SessionDep, reader: ReaderDep, body: ReadAll | None = None) -> UnreadCount:
    """Mark everything read (of one app, and up to and including one item, when given)."""
    body = body or ReadAll()
    await _known_app(session, body.app)
    unread = await inbox_service.read_all(
        session, reader=reader, app=body.app, up_to=body.up_to, now=utcnow()
    )
    return UnreadCount(unread=unread)


@router.get("/{notification_id}", response_model=InboxItemOut)
async def get_item(notification_id: uuid.UUID, session: SessionDep, reader: ReaderDep) -> InboxItemOut:
    """The full content, for internal items too; classified items carry their status only."""
    item = await inbox_service.get_item(session, reader=reader, notification_id=notification_id, full=True)
    return render(item, language=reader.language, full=True)


@router.post("/{notification_id}/read", response_model=InboxItemOut)
async def mark_read(notification_id: uuid.UUID, session: SessionDep, reader: ReaderDep) -> InboxItemOut:
    item = await inbox_service.mark_read(
        session, reader=reader, notification_id=notification_id, now=utcnow()
    )
    return render(item, language=reader.language, full=False)


@router.post("/{notification_id}/archive", response_model=InboxItemOut)
async def archive(notification_id: uuid.UUID, session: SessionDep, reader: ReaderDep) -> InboxItemOut:
    item = await inbox_service.set_archived(
        session, reader=reader, notification_id=notification_id, archived=True, now=utcnow()
    )
    return render(item, language=reader.language, full=False)


@router.post("/{notification_id}/unarchive", response_model=InboxItemOut)
async def unarchive(notification_id: uuid.UUID, session: SessionDep, reader: ReaderDep) -> InboxItemOut:
    item = await inbox_service.set_archived(
        session, reader=reader, notification_id=notification_id, archived=False, now=utcnow()
    )
    return render(item, language=reader.language, full=False)


@router.post("/{notification_id}/receipts", response_model=ReceiptOut)
async def receipt(
    notification_id: uuid.UUID, body: ReceiptIn, session: SessionDep, reader: ReaderDep
) -> ReceiptOut:
    """The app reports ``received`` (on arrival) or ``opened`` (tapped; also marks it read).
    Idempotent: the first report of each is kept."""
    recorded = await receipts.record_receipt(
        session, reader=reader, notification_id=notification_id, event=body.event, now=utcnow()
    )
    return ReceiptOut.model_validate(recorded)
