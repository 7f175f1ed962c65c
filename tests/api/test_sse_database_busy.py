"""A stream whose query meets a full pool or a vanished database after the response started can
no longer answer 503: it ends cleanly with ``event: ended`` / ``{"reason": "busy"}`` (and the
client reconnects after the retry delay), instead of a cut connection and an error traceback.
Found with a thousand streams opened at once (tests/inbox/test_many_streams.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from api.sse import event_stream
from core.streams import StreamEvent


def _app(failure: BaseException) -> FastAPI:
    app = FastAPI()

    async def events() -> AsyncGenerator[StreamEvent, None]:
        yield StreamEvent("unread", {"unread": 1})
        raise failure

    @app.get("/stream")
    async def stream() -> object:
        return event_stream(events())

    return app


async def _body(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/stream", headers={"Accept": "text/event-stream"})
    assert response.status_code == 200
    return response.text


async def test_a_full_pool_inside_a_stream_ends_it_with_busy():
    body = await _body(_app(SQLAlchemyTimeoutError("QueuePool limit reached")))
    assert "event: unread" in body
    assert body.rstrip().endswith('event: ended\ndata: {"reason":"busy"}')


async def test_a_vanished_database_inside_a_stream_ends_it_with_busy():
    body = await _body(_app(ConnectionRefusedError(111, "Connection refused")))
    assert body.rstrip().endswith('event: ended\ndata: {"reason":"busy"}')


async def test_any_other_error_is_not_hidden():
    with pytest.raises(Exception, match="a bug"):
        await _body(_app(RuntimeError("a bug")))
