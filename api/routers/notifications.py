"""Sending notifications and following their progress."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Response, status

from api.deps import SessionDep, require_or_scope
from auth.principal import Principal
from auth.roles import Permission
from notifications import service as notification_service
from notifications.models import Notification
from notifications.schemas import NotificationCreate, NotificationOut

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
    out = NotificationOut.model_validate(notification)
    pending = notification.targeted - notification.sent - notification.invalid - notification.failed
    return out.model_copy(update={"pending": max(0, pending)})


@router.post("", response_model=NotificationOut, status_code=status.HTTP_202_ACCEPTED)
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


@router.get("/{notification_id}", response_model=NotificationOut)
async def get_notification(
    notification_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require_or_scope(Permission.NOTIFICATIONS_READ, scope="notifications:send"),
) -> NotificationOut:
    """Live counters: targeted, sent, invalid (dead tokens), failed, pending."""
    return _out(await notification_service.get(session, principal=principal, notification_id=notification_id))
