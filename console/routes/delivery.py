"""The delivery view of a released news item: counters per language and platform, and live
progress over Server-Sent Events (``notifications.stats``, the stream behind
``GET /v1/notifications/{id}/progress``)."""

from __future__ import annotations

import datetime as dt
import uuid

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import Require, SessionDep
from api.sse import event_stream
from auth.principal import Principal
from auth.roles import Permission
from console.security import verify_csrf
from console.templating import render
from core.db import utcnow
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
    context: dict[str, object] = {"item": await news.out(session, item), "stats": None}
    if item.notification_id is not None:
        notification = await notification_service.get(
            session, principal=principal, notification_id=item.notification_id
        )
        stats = await notification_stats.stats_of(session, notification=notification)
        history = await notification_stats.history_of(session, notification=notification)
        context |= {
            "stats": stats,
            "history": history,
            "lines": chart_lines(history, stats.totals.targeted),
            "history_json": history_json(history, targeted=stats.totals.targeted, now=utcnow()),
        }
    return render(request, "news/delivery.html", context, principal=principal)


CHART_WIDTH, CHART_HEIGHT = 600, 160


def chart_lines(history: notification_stats.DeliveryHistory, targeted: int) -> dict[str, str]:
    """Cumulative series as SVG polyline points, drawn on the server: the chart shows on load,
    with no script, and console.js redraws the same polylines while a push is still sending."""
    if not history.buckets:
        return {}
    running = dict.fromkeys(notification_stats.HISTORY_SERIES, 0)
    points: dict[str, list[tuple[float, int]]] = {name: [(0.0, 0)] for name in running}
    span = history.bucket_seconds * len(history.buckets)
    for index, bucket in enumerate(history.buckets, start=1):
        for name in running:
            running[name] += getattr(bucket, name)
            points[name].append((index * history.bucket_seconds, running[name]))
    top = max(1, targeted, *running.values())
    return {
        name: " ".join(
            f"{t / span * CHART_WIDTH:.1f},{CHART_HEIGHT - n / top * CHART_HEIGHT:.1f}" for t, n in series
        )
        for name, series in points.items()
    }


def history_json(history: notification_stats.DeliveryHistory, *, targeted: int, now: dt.datetime) -> str:
    """The buckets for console.js (a data-* attribute: the CSP allows no inline script), as
    cumulative samples in the shape of the live progress events: seconds since creation."""
    running = dict.fromkeys(notification_stats.HISTORY_SERIES, 0)
    samples: list[dict[str, float | int]] = []
    for index, bucket in enumerate(history.buckets, start=1):
        for name in running:
            running[name] += getattr(bucket, name)
        samples.append({"t": round(index * history.bucket_seconds, 3), "targeted": targeted, **running})
    return orjson.dumps(
        {
            "created_at": history.start.isoformat(),
            "bucket_seconds": history.bucket_seconds,
            "samples": samples,
        }
    ).decode()


@router.get("/{item_id}/progress")
async def progress(item_id: uuid.UUID, session: SessionDep, principal: Principal = Reader) -> Response:
    """``progress`` events until the push is finished, then ``final``; console.js renders them."""
    item, _path = await news.load(session, principal=principal, item_id=item_id)
    if item.notification_id is None:
        raise NotFound("This item has not been released yet")
    notification = await notification_service.get(
        session, principal=principal, notification_id=item.notification_id
    )
    return event_stream(notification_stats.progress_stream(notification.id))
