"""Real rows for the report tests: notifications with their counters, deliveries in several
languages, receipts and the news items they were released from."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

VN = dt.timezone(dt.timedelta(hours=7))


@dataclass(frozen=True)
class Device:
    language: str
    status: str = "sent"  # of its delivery
    received: bool = False
    opened: bool = False


async def push(
    conn: AsyncConnection,
    *,
    unit_id: uuid.UUID,
    created: dt.datetime,
    devices: list[Device],
    app: str = "portal",
    audience: str | None = None,  # a news item's audience JSON, or None for a direct push
    author_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A completed notification whose counters match its deliveries."""
    counts = {s: sum(d.status == s for d in devices) for s in ("sent", "invalid", "failed")}
    notification = (
        await conn.execute(
            text(
                """INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
                       audience, created_by_kind, created_by_id, unit_id, expires_at, status, created_at,
                       completed_at, targeted, sent, invalid, failed)
                   VALUES (gen_random_uuid(), :app, 'k', 'high', 'public', '{"vi": "a"}', '{"vi": "b"}', 60,
                       '{"all": true}', 'user', gen_random_uuid(), :unit, :expires, 'completed', :created,
                       :completed, :targeted, :sent, :invalid, :failed)
                   RETURNING id"""
            ),
            {
                "app": app,
                "unit": unit_id,
                "created": created,
                "expires": created + dt.timedelta(hours=1),
                "completed": created + dt.timedelta(minutes=5),
                "targeted": len(devices),
                **counts,
            },
        )
    ).scalar_one()
    for device in devices:
        device_id = (
            await conn.execute(
                text(
                    "INSERT INTO devices (id, app, platform, provider, token, locale)"
                    " VALUES (gen_random_uuid(), :app, 'android', 'fcm', 'tok-' || gen_random_uuid(), :lang)"
                    " RETURNING id"
                ),
                {"app": app, "lang": device.language},
            )
        ).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO deliveries (notification_id, device_id, provider, language, status)"
                " VALUES (:n, :d, 'fcm', :lang, :status)"
            ),
            {"n": notification, "d": device_id, "lang": device.language, "status": device.status},
        )
        if device.received or device.opened:
            await conn.execute(
                text(
                    "INSERT INTO receipts (notification_id, reader_id, device_id, received_at, opened_at)"
                    " VALUES (:n, :d, :d, :at, :opened)"
                ),
                {
                    "n": notification,
                    "d": device_id,
                    "at": created,
                    "opened": created if device.opened else None,
                },
            )
    await conn.execute(
        text(
            "INSERT INTO delivery_batches (notification_id, low_id, high_id, status)"
            " SELECT :n, min(id), max(id), 'done' FROM deliveries WHERE notification_id = :n"
        ),
        {"n": notification},
    )
    if audience is not None:
        await conn.execute(
            text(
                "INSERT INTO news_items (id, unit_id, author_id, status, article_id, deep_link, title, body,"
                " language_policy, audience, priority, ttl_seconds, collapse_key, notification_id)"
                " VALUES (gen_random_uuid(), :unit, :user, 'sent', 'a-1', 'https://dangcongsan.vn/a',"
                " '{\"vi\": \"t\"}', '{\"vi\": \"b\"}', 'fallback_vi', CAST(:audience AS jsonb), 'high', 60,"
                " 'a-1', :n)"
            ),
            {"unit": unit_id, "user": author_id, "audience": audience, "n": notification},
        )
    return notification
