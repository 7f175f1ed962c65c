"""Crafted rows of the outbox: notifications and open batches whose deliveries are due (or not)
at chosen times, for the backlog's tests (test_figures.py) and the console's live figures."""

from __future__ import annotations

import datetime as dt
import uuid

from core import clock
from notifications.models import Delivery, DeliveryBatch, Notification


def due_notification(*, priority: str, now: dt.datetime, status: str = "sending", **values) -> Notification:
    return Notification(
        **{
            "app": "portal",
            "kind": "breaking_news",
            "priority": priority,
            "sensitivity": "public",
            "title": {"vi": "Tin"},
            "body": {"vi": "Nội dung"},
            "ttl_seconds": 3600,
            "audience": {"all": True},
            "created_by_kind": "user",
            "created_by_id": uuid.uuid4(),
            "status": status,
            "expires_at": now + dt.timedelta(hours=1),
            "created_at": now - dt.timedelta(minutes=10),
            "fanout_done_at": now - dt.timedelta(minutes=9),
            **values,
        }
    )


async def open_batch(
    session,
    notification: Notification,
    devices: list[uuid.UUID],
    *,
    rows: list[tuple[str, dt.datetime]],
    leased_until: dt.datetime | None = None,
    created_at: dt.datetime | None = None,
) -> None:
    """One open batch over ``rows`` (status, next_attempt_at), one device each."""
    deliveries = [
        Delivery(
            notification_id=notification.id,
            device_id=device,
            provider="fcm",
            language="vi",
            status=status,
            next_attempt_at=due,
        )
        for device, (status, due) in zip(devices, rows, strict=False)
    ]
    session.add_all(deliveries)
    await session.flush()
    session.add(
        DeliveryBatch(
            notification_id=notification.id,
            low_id=min(d.id for d in deliveries),
            high_id=max(d.id for d in deliveries),
            next_attempt_at=min(d.next_attempt_at for d in deliveries if d.status in ("pending", "retrying")),
            leased_until=leased_until,
            created_at=created_at or clock.utcnow(),
        )
    )
    await session.flush()
