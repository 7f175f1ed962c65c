"""Server-Sent Events responses: sse-starlette frames the events the domains yield
(``core.streams.StreamEvent``), sends the heartbeats, notices a client that went away and ends
open streams when the server shuts down (the clients reconnect after ``RETRY_MILLISECONDS``).

The wire format is the one the apps and console.js read: every stream starts with
``retry: 3000``; an event is ``id:`` (when resumable), ``event:`` and one ``data:`` line of
compact JSON, ``\\n`` line ends; a heartbeat is the comment ``: heartbeat``. A stream whose query
meets a busy or vanished database ends with ``event: ended`` / ``{"reason": "busy"}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import orjson
from fastapi import Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sse_starlette import EventSourceResponse, ServerSentEvent

from core.db import is_bounded_wait, lost_connection
from core.errors import ChuongError
from core.logging import get_logger
from core.streams import StreamEvent

log = get_logger(__name__)

RETRY_MILLISECONDS = 3000
EVENT_STREAM = "text/event-stream"
# sse-starlette's default is "\r\n"; every stream so far ends its lines with "\n".
_SEPARATOR = "\n"


class NotAcceptable(ChuongError):
    status_code = 406
    code = "not_acceptable"


def require_event_stream(request: Request) -> None:
    """A stream answers only a client that asked for one (an EventSource sends the header)."""
    if EVENT_STREAM not in request.headers.get("accept", ""):
        raise NotAcceptable(f"Send Accept: {EVENT_STREAM}", code="not_acceptable")


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep=_SEPARATOR)


async def _encoded(events: AsyncGenerator[StreamEvent, None]) -> AsyncGenerator[ServerSentEvent, None]:
    # aclosing: however the response ends, the domain's stream runs its own cleanup (its Redis
    # connection, the reader's stream slot) now rather than when the garbage collector gets to it.
    async with contextlib.aclosing(events):
        yield ServerSentEvent(retry=RETRY_MILLISECONDS, sep=_SEPARATOR)
        try:
            async for event in events:
                yield ServerSentEvent(
                    orjson.dumps(event.data).decode(), event=event.name, id=event.id, sep=_SEPARATOR
                )
        except (DBAPIError, SQLAlchemyTimeoutError, ConnectionError) as exc:
            if not (is_bounded_wait(exc) or lost_connection(exc)):
                raise
            # The response has started: no 503 can be sent any more. A query of the stream (its
            # first count, a replay, a credential check) met a full pool or a database that went
            # away; the stream ends cleanly and says why, and the client reconnects after the
            # retry delay (an EventSource does by itself) instead of meeting a cut connection.
            log.warning("stream_ended_database_busy", error_type=type(getattr(exc, "orig", exc)).__name__)
            yield ServerSentEvent(orjson.dumps({"reason": "busy"}).decode(), event="ended", sep=_SEPARATOR)


def event_stream(
    events: AsyncGenerator[StreamEvent, None], *, heartbeat_seconds: float | None = None
) -> EventSourceResponse:
    """The response for a domain's event stream; a heartbeat every ``heartbeat_seconds`` keeps
    proxies from closing an idle one (None: the stream sends often enough by itself)."""
    return EventSourceResponse(
        _encoded(events),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        sep=_SEPARATOR,
        ping=heartbeat_seconds or 0,  # 0: no heartbeat task at all
        ping_message_factory=_heartbeat,
    )
