"""Real rows for the report tests: notifications with their counters, deliveries in several
languages, receipts and the news items they were released from."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auth.models import Unit
from auth.roles import Role
from tests.support.factories import Account, make_account, make_unit

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


async def portals_with_pushes(owner_engine: AsyncEngine) -> tuple[Unit, Unit, Unit, Account]:
    """A board with two component portals; portal A's pushes over two weeks of January 2026
    (the figures tests/news/test_reports.py expects), one push of portal B."""
    board = await make_unit(name="Ban Tuyên giáo")
    portal_a = await make_unit(parent=board, name="Cổng Hà Nội")
    portal_b = await make_unit(parent=board, name="Cổng Huế")
    editor_a = await make_account(role=Role.EDITOR, unit=portal_a)
    async with owner_engine.begin() as conn:
        # Monday 5 January, week 2026-01-05: two sections, four devices.
        await push(
            conn,
            unit_id=portal_a.id,
            created=dt.datetime(2026, 1, 5, 10, tzinfo=VN),
            devices=[
                Device("vi", received=True, opened=True),
                Device("vi", received=True),
                Device("en", received=True, opened=True),
                Device("en", status="invalid"),
            ],
            audience='{"sections": ["van-kien", "tu-lieu"]}',
            author_id=editor_a.id,
        )
        # Sunday 23:30 in Vietnam is still the first week (16:30 UTC).
        await push(
            conn,
            unit_id=portal_a.id,
            created=dt.datetime(2026, 1, 11, 23, 30, tzinfo=VN),
            devices=[Device("fr", received=True), Device("fr", received=True)],
            audience='{"all_readers": true}',
            author_id=editor_a.id,
        )
        # Monday 00:30 in Vietnam is the second week, though still Sunday in UTC.
        await push(
            conn,
            unit_id=portal_a.id,
            created=dt.datetime(2026, 1, 12, 0, 30, tzinfo=VN),
            devices=[Device("vi")],
        )
        await push(
            conn,
            unit_id=portal_a.id,
            created=dt.datetime(2026, 1, 6, 9, tzinfo=VN),
            devices=[Device("vi", received=True)],
            app="tracking",
        )
        # Another component portal's push.
        await push(
            conn,
            unit_id=portal_b.id,
            created=dt.datetime(2026, 1, 7, 9, tzinfo=VN),
            devices=[Device("vi", received=True, opened=True)],
        )
    return board, portal_a, portal_b, editor_a
