"""The delivery view of a released news item: counters per language and platform, and live
progress over Server-Sent Events (``notifications.stats``, the stream behind
``GET /v1/notifications/{id}/progress``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.security import verify_csrf
from console.templating import render
from core.errors import NotFound
from news import service as news
from notifications import service as notification_service
from notifications import stats as notification_stats

router = APIRouter(prefix="/news", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.NEWS_DRAFT, Permission.NOTIFICATIONS_READ))


@router.get("/{item_id}/delivery")
async def delivery_page(
    request: Request, item_id: uuid.UUID, session: SessionDep, principal: Principal = Reader
) -> Response:
    item, _path = await news.load(session, principal=principal, item_id=item_id)
    stats = None
    if item.notification_id is not None:
        notification = await notification_service.get(
            session, principal=principal, notification_id=item.notification_id
        )
        stats = await notification_stats.stats_of(session, notification=notification)
    return render(
        request,
        "news/delivery.html",
        {"item": await news.out(session, item), "stats": stats},
        principal=principal,
    )


@router.get("/{item_id}/progress")
async def progress(item_id: uuid.UUID, session: SessionDep, principal: Principal = Reader) -> Response:
    """``progress`` events until the push is finished, then ``final``; console.js renders them."""
    item, _path = await news.load(session, principal=principal, item_id=item_id)
    if item.notification_id is None:
        raise NotFound("This item has not been released yet")
    notification = await notification_service.get(
        session, principal=principal, notification_id=item.notification_id
    )
    return StreamingResponse(
        notification_stats.progress_stream(notification.id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
