"""The operators' live view on the home page: the service's headline figures
(``notifications.headline``), as JSON and as Server-Sent Events that ``live.js`` renders.

Both answer only ``operations:read`` (system and unit admins); anyone else gets 403 in the one
JSON error shape (console/app.py answers data requests in JSON, pages in HTML). The stream checks
the viewer's sign-in before each event and ends within ``headline.MAX_STREAM_SECONDS``, so an
ended session stops it and every reconnection is authorised again."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Require, still_authenticated
from api.sse import event_stream, require_event_stream
from auth.principal import Principal
from auth.roles import Permission
from console.security import verify_csrf
from core import stream_slots
from core.config import get_settings
from core.errors import TooManyRequests
from core.streams import StreamEvent, cleanup_scope
from notifications import headline

router = APIRouter(prefix="/live", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Operator = Depends(Require(Permission.OPERATIONS_READ))


@router.get("/figures")
async def figures(principal: Principal = Operator) -> Response:
    return JSONResponse((await headline.read()).to_json())


@router.get("/stream")
async def stream(request: Request, principal: Principal = Operator) -> Response:
    """``figures`` every few seconds, ``ended`` when the session ends; no heartbeat needed.
    At most ``console_live_streams_per_user`` at once per account (429 ``too_many_streams``)."""
    require_event_stream(request)
    assert principal.actor is not None
    key = f"chuong:console:live:{principal.actor.id}"
    slot = await stream_slots.take(
        key,
        cap=get_settings().console_live_streams_per_user,
        lifetime_seconds=headline.MAX_STREAM_SECONDS + 5,
    )
    if slot is None:
        raise TooManyRequests(
            "Too many open live views for this account; close one first",
            code="too_many_streams",
            retry_after=int(headline.EVERY_SECONDS),
        )
    return event_stream(_releasing(headline.stream(partial(still_authenticated, request)), key, slot))


async def _releasing(
    events: AsyncGenerator[StreamEvent, None], key: str, slot: str
) -> AsyncGenerator[StreamEvent, None]:
    try:
        async for event in events:
            yield event
    finally:
        with cleanup_scope():  # a closed tab must give its slot back at once
            await stream_slots.release(key, slot)
