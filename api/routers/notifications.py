"""Sending notifications and following their progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status
from sse_starlette import EventSourceResponse

from api.deps import SessionDep, require_or_scope
from api.sse import event_stream, require_event_stream
from auth.principal import Principal
from auth.roles import Permission
from notifications import service as notification_service
from notifications import stats as notification_stats
from notifications.models import Notification
from notifications.schemas import (
    NotificationCreate,
    NotificationDetailOut,
    NotificationOut,
    NotificationStatsOut,
)

router = APIRouter(tags=["notifications"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Same key and body → the same notification; same key, other body → 422; "
        "while the first request with the key is running → 409.",
    ),
]


def _out(notification: Notification) -> NotificationOut:
    return NotificationOut.model_validate(notification)  # ``pending`` is derived by the model


@router.post(
    "",
    response_model=NotificationOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"model": NotificationOut, "description": "A repeat of an Idempotency-Key"}},
)
async def create_notification(
    body: NotificationCreate,
    response: Response,
    session: SessionDep,
    idempotency_key: IdempotencyKey = None,
    principal: Principal = require_or_scope(Permission.NOTIFICATIONS_SEND, scope="notifications:send"),
) -> NotificationOut:
    """Queue a notification for delivery (202). Poll ``GET /v1/notifications/{id}`` for progress."""
    notification, created = await notification_service.create(
        session, principal=principal, body=body, idempotency_key=idempotency_key
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(notification)


@router.get("/{notification_id}", response_model=NotificationDetailOut)
async def get_notification(
    notification_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_or_scope(Permission.NOTIFICATIONS_READ, scope="notifications:send"),
) -> NotificationDetailOut:
    """Live counters: targeted, sent, invalid (dead tokens), failed, pending; and the readers'
    receipts (received, opened)."""
    notification = await notification_service.get(
        session, principal=principal, notification_id=notification_id
    )
    received, opened = await notification_stats.receipt_counts(session, notification_id=notification.id)
    out = _out(notification)
    return NotificationDetailOut(**out.model_dump(), received=received, opened=opened)


@router.get("/{notification_id}/stats", response_model=NotificationStatsOut)
async def get_notification_stats(
    notification_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_or_scope(Permission.NOTIFICATIONS_READ, scope="notifications:send"),
) -> NotificationStatsOut:
    """Deliveries by state, per language and per platform (targeted = sent + invalid + failed +
    retrying + pending + cancelled), receipts (received, opened), and the time from creation to
    the first and the latest provider request."""
    notification = await notification_service.get(
        session, principal=principal, notification_id=notification_id
    )
    return await notification_stats.stats_of(session, notification=notification)


@router.get(
    "/{notification_id}/progress",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def notification_progress(
    request: Request,
    notification_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_or_scope(Permission.NOTIFICATIONS_READ, scope="notifications:send"),
) -> Response:
    """Server-Sent Events: ``progress`` snapshots (counters and receipts) as batches are recorded
    and at least every second, then ``final`` with the full stats once the notification is
    finished, and the stream ends. Send ``Accept: text/event-stream``."""
    notification = await notification_service.get(
        session, principal=principal, notification_id=notification_id
    )
    require_event_stream(request)
    return event_stream(notification_stats.progress_stream(notification.id))
