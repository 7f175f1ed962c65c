"""The operators' live view on the home page: the service's headline figures
(``notifications.headline``), as JSON and as Server-Sent Events that ``live.js`` renders.

Both answer only ``operations:read`` (system and unit admins); anyone else gets 403 in the one
JSON error shape (console/app.py answers data requests in JSON, pages in HTML). The stream checks
the viewer's sign-in before each event and ends within ``headline.MAX_STREAM_SECONDS``, so an
ended session stops it and every reconnection is authorised again."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from api.deps import Require, still_authenticated
from api.sse import event_stream, require_event_stream
from auth.principal import Principal
from auth.roles import Permission
from console.security import verify_csrf
from notifications import headline

router = APIRouter(prefix="/live", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Operator = Depends(Require(Permission.OPERATIONS_READ))


@router.get("/figures")
async def figures(principal: Principal = Operator) -> Response:
    return JSONResponse((await headline.read()).to_json())


@router.get("/stream")
async def stream(request: Request, principal: Principal = Operator) -> Response:
    """``figures`` every few seconds, ``ended`` when the session ends; no heartbeat needed."""
    require_event_stream(request)
    return event_stream(headline.stream(partial(still_authenticated, request)))
