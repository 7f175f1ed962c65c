"""``GET /v1/inbox/stream``: Server-Sent Events of new items and read-state changes.

Live events come from Redis pub/sub (inbox/events.py); every item event carries the item's
cursor as its SSE ``id``, so a client that reconnects with ``Last-Event-ID`` first gets the items
it missed, replayed from PostgreSQL, then live events again. After ``MAX_STREAM_SECONDS`` the
server ends the stream and the client reconnects (EventSource does so by itself). The stream
yields events (``core.streams.StreamEvent``); the transport (``api/sse.py``) puts them on the wire
and sends a heartbeat every ``HEARTBEAT_SECONDS``, which keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import orjson

from core import stream_slots
from core.config import get_settings
from core.db import transaction
from core.errors import NotFound, TooManyRequests
from core.redis import new_redis_client
from core.streams import StreamEvent, cleanup_scope
from inbox import events, queries, service
from inbox.queries import Filters, Position
from inbox.readers import Reader
from inbox.schemas import render

HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 300.0
REPLAY_LIMIT = 100


async def _missed(reader: Reader, after: Position) -> tuple[list[service.Item], bool, int]:
    """Items newer than ``after``, oldest first; whether more were missed than are replayed;
    and the unread count now."""
    async with transaction() as session:
        markers = await queries.load_markers(session, reader)
        entries, more = await queries.page(
            session, reader, Filters(since=after[0]), markers=markers, before=None, limit=REPLAY_LIMIT
        )
        newer = [entry.notification_id for entry in entries if entry.position > after]
        items = [
            await service.get_item(session, reader=reader, notification_id=nid) for nid in reversed(newer)
        ]
        unread = await queries.unread_count(session, reader, app=None, markers=markers)
    return items, more, unread


async def _unread(reader: Reader) -> int:
    async with transaction() as session:
        return await service.unread_count(session, reader=reader, app=None)


def _item_event(reader: Reader, item: service.Item) -> StreamEvent:
    out = render(item, language=reader.language, full=False)
    return StreamEvent("item", out.model_dump(mode="json"), id=queries.encode_cursor(item.entry.position))


# Asked before each live event: is the caller still allowed to read this inbox?
StillAllowed = Callable[[], Awaitable[bool]]


async def _always() -> bool:
    return True


def _streams_key(reader: Reader) -> str:
    return f"chuong:inbox:streams:{reader.id}"


async def admit(reader: Reader) -> str:
    """Take one of the reader's stream slots (``inbox_streams_per_reader``), or 429.
    A stream that ends without saying so (a killed API process) frees its slot by itself after
    ``MAX_STREAM_SECONDS`` (core/stream_slots.py)."""
    slot = await stream_slots.take(
        _streams_key(reader),
        cap=get_settings().inbox_streams_per_reader,
        lifetime_seconds=MAX_STREAM_SECONDS + 5,
    )
    if slot is None:
        raise TooManyRequests(
            "Too many open inbox streams for this reader; close one first",
            code="too_many_streams",
            retry_after=int(HEARTBEAT_SECONDS),
        )
    return slot


async def _release(reader: Reader, slot: str) -> None:
    await stream_slots.release(_streams_key(reader), slot)


async def stream(
    reader: Reader, *, after: Position | None, still_allowed: StillAllowed = _always, slot: str | None = None
) -> AsyncGenerator[StreamEvent, None]:
    """The stream outlives the request that opened it; revocation (D-23) must not. Before each
    live event (the transport's heartbeats never reach this generator, so an idle stream costs no
    query) the caller's credentials are checked again, and an ended session, a retired device
    credential or a revoked delegation ends the stream with an ``ended`` event (the reconnection
    then gets its 401)."""
    # A connection of its own: a subscribed connection cannot serve other commands.
    redis = new_redis_client(decode_responses=True)
    pubsub: Any = redis.pubsub()  # redis-py's PubSub.aclose is untyped
    try:
        # Subscribe before replaying, so nothing falls between the replay and the live events.
        await pubsub.subscribe(
            events.reader_channel(reader.id), *[events.app_channel(a) for a in reader.apps]
        )
        replayed: set[uuid.UUID] = set()
        if after is not None:
            items, more, unread = await _missed(reader, after)
            if more:
                yield StreamEvent("reset", {"reason": "too_many_missed"})  # reload the list instead
            for item in items:
                replayed.add(item.notification.id)
                yield _item_event(reader, item)
        else:
            unread = await _unread(reader)
        yield StreamEvent("unread", {"unread": unread})
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=remaining)
            if message is None:
                continue
            payload = orjson.loads(message["data"])
            if not await still_allowed():
                yield StreamEvent("ended", {"reason": "credentials_ended"})
                return
            if payload.get("type") != "item":
                yield StreamEvent(str(payload.get("type")), payload)
                continue
            notification_id = uuid.UUID(payload["id"])
            if notification_id in replayed:
                continue
            try:
                async with transaction() as session:
                    item = await service.get_item(session, reader=reader, notification_id=notification_id)
            except NotFound:
                continue  # a broadcast to topics this reader does not follow
            yield _item_event(reader, item)
    finally:
        with cleanup_scope():  # a dropped client must still give its slot back at once
            await pubsub.aclose()
            await redis.aclose()
            if slot is not None:
                await _release(reader, slot)
