"""Retention (issue 19 item 7): the nightly purge removes each kind of record once it is older
than its setting, in bounded batches, keeps what is younger or still work, and keeps a
notification's receipt totals after its receipts are gone. Real rows in a real database."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.roles import Role
from core.config import Settings, get_settings
from core.db import transaction
from notifications import retention
from notifications.stats import receipt_counts
from tests.support.factories import make_account, make_unit
from workers.delivery_jobs import purge as purge_job

NOW = dt.datetime(2027, 6, 1, 3, 7, tzinfo=dt.UTC)


def _days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


async def _notification(
    conn, *, created: dt.datetime, status: str = "completed", app: str = "portal"
) -> uuid.UUID:
    completed = created + dt.timedelta(minutes=5) if status == "completed" else None
    return (
        await conn.execute(
            text(
                """INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
                       audience, created_by_kind, created_by_id, expires_at, status, created_at, completed_at)
                   VALUES (gen_random_uuid(), :app, 'k', 'high', 'public', '{"vi": "a"}', '{"vi": "b"}', 60,
                       '{"all": true}', 'user', gen_random_uuid(), :expires, :status,
                       :created, :completed)
                   RETURNING id"""
            ),
            {
                "app": app,
                "created": created,
                "expires": created + dt.timedelta(hours=1),
                "status": status,
                "completed": completed,
            },
        )
    ).scalar_one()


async def _devices(conn, count: int) -> list[uuid.UUID]:
    rows = await conn.execute(
        text(
            "INSERT INTO devices (id, app, platform, provider, token, locale)"
            " SELECT gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-' || gen_random_uuid(), 'vi'"
            " FROM generate_series(1, :n) RETURNING id"
        ),
        {"n": count},
    )
    return list(rows.scalars())


async def _children(conn, notification: uuid.UUID, devices: list[uuid.UUID], *, opened: int) -> None:
    """Deliveries (one batch), receipts (``opened`` of them opened), inbox rows and read states."""
    await conn.execute(
        text(
            "INSERT INTO deliveries (notification_id, device_id, provider, language, status)"
            " SELECT :n, d, 'fcm', 'vi', 'sent' FROM unnest(CAST(:devices AS uuid[])) AS d"
        ),
        {"n": notification, "devices": devices},
    )
    await conn.execute(
        text(
            "INSERT INTO delivery_batches (notification_id, low_id, high_id, status)"
            " SELECT :n, min(id), max(id), 'done' FROM deliveries WHERE notification_id = :n"
        ),
        {"n": notification},
    )
    await conn.execute(
        text(
            "INSERT INTO receipts (notification_id, reader_id, device_id, received_at, opened_at)"
            " SELECT :n, d, d, now(), CASE WHEN o <= :opened THEN now() END"
            " FROM unnest(CAST(:devices AS uuid[])) WITH ORDINALITY AS x(d, o)"
        ),
        {"n": notification, "devices": devices, "opened": opened},
    )
    await conn.execute(
        text(
            "INSERT INTO inbox_items (reader_id, notification_id, app, created_at)"
            " SELECT d, :n, 'portal', now() FROM unnest(CAST(:devices AS uuid[])) AS d"
        ),
        {"n": notification, "devices": devices},
    )
    await conn.execute(
        text(
            "INSERT INTO broadcast_states (reader_id, notification_id, read_at)"
            " SELECT d, :n, now() FROM unnest(CAST(:devices AS uuid[])) AS d"
        ),
        {"n": notification, "devices": devices},
    )


async def _count(conn, table: str, notification: uuid.UUID) -> int:
    return int(
        (
            await conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE notification_id = :n"), {"n": notification}
            )
        ).scalar_one()
    )


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Batches far smaller than the rows, so that every step must resume across transactions."""
    settings = get_settings()
    monkeypatch.setattr(settings, "retention_batch_size", 100)
    return settings


async def test_each_kind_goes_after_its_retention_and_nothing_younger_or_unfinished(
    database_url, redis, owner_engine: AsyncEngine, small_batches: Settings
):
    unit = await make_unit()
    user = await make_account(role=Role.MEMBER, unit=unit)
    async with owner_engine.begin() as conn:
        devices = await _devices(conn, 250)
        # Ages against the defaults: deliveries 30 d, receipts 365 d, SMS 365 d, notifications 730 d.
        ancient = await _notification(conn, created=_days_ago(800))
        year_old = await _notification(conn, created=_days_ago(400))
        month_old = await _notification(conn, created=_days_ago(40))
        fresh = await _notification(conn, created=_days_ago(3))
        ancient_but_sending = await _notification(conn, created=_days_ago(800), status="sending")
        for notification in (ancient, year_old, month_old, fresh, ancient_but_sending):
            await _children(conn, notification, devices, opened=70)
        article = (
            await conn.execute(
                text(
                    "INSERT INTO news_items (id, unit_id, author_id, status, article_id, deep_link,"
                    " title, body,"
                    " language_policy, audience, priority, ttl_seconds, collapse_key, notification_id)"
                    " VALUES (gen_random_uuid(), :unit, :user, 'sent', 'a-1', 'https://dangcongsan.vn/a',"
                    " '{\"vi\": \"t\"}', '{\"vi\": \"b\"}', 'fallback_vi', '{\"all\": true}', 'high', 60,"
                    " 'a-1', :n) RETURNING id"
                ),
                {"unit": unit.id, "user": user.id, "n": ancient},
            )
        ).scalar_one()
        for notification, created, status in (
            (year_old, _days_ago(400), "sent"),
            (month_old, _days_ago(40), "sent"),
            (ancient_but_sending, _days_ago(400), "retrying"),  # work, whatever its age
        ):
            await conn.execute(
                text(
                    "INSERT INTO sms_messages"
                    " (notification_id, user_id, reason, status, created_at, updated_at)"
                    " VALUES (:n, :u, 'degraded_mode', :s, :c, :c)"
                    " ON CONFLICT ON CONSTRAINT uq_sms_messages_notification_user DO NOTHING"
                ),
                {"n": notification, "u": user.id, "s": status, "c": created},
            )
        await conn.execute(
            text(
                "INSERT INTO sms_daily_counts (day, scope, scope_id, count) VALUES"
                " (:old, 'all', '00000000-0000-0000-0000-000000000000', 3),"
                " (:recent, 'all', '00000000-0000-0000-0000-000000000000', 2)"
            ),
            {"old": _days_ago(400).date(), "recent": _days_ago(10).date()},
        )

    report = await retention.purge(now=NOW)

    assert report["complete"] is True
    assert report["notifications"] == 1  # the ancient, finished one; never one still sending
    # Finished 30+ days ago: ancient, year_old and month_old (deliveries go before notifications).
    assert report["deliveries"] == 250 * 3
    assert report["receipts"] == 250 * 2  # year_old's and ancient's (summed, then the row went)
    async with owner_engine.connect() as conn:
        remaining = {row[0] for row in await conn.execute(text("SELECT id FROM notifications"))}
        assert remaining == {year_old, month_old, fresh, ancient_but_sending}
        for table in ("receipts", "inbox_items", "broadcast_states", "deliveries", "delivery_batches"):
            assert await _count(conn, table, ancient) == 0, table
        # Deliveries and batches of notifications finished 30+ days ago; the rest untouched.
        for notification in (year_old, month_old):
            assert await _count(conn, "deliveries", notification) == 0
            assert await _count(conn, "delivery_batches", notification) == 0
        assert await _count(conn, "deliveries", fresh) == 250
        assert await _count(conn, "deliveries", ancient_but_sending) == 250
        # Receipts of the year-old notification are gone but still counted in its stats.
        assert await _count(conn, "receipts", year_old) == 0
        assert await _count(conn, "receipts", month_old) == 250
        # The inbox keeps every notification that is kept.
        assert await _count(conn, "inbox_items", year_old) == 250
        sms = sorted(
            (row.status, row.notification_id == month_old)
            for row in await conn.execute(text("SELECT status, notification_id FROM sms_messages"))
        )
        assert sms == [("retrying", False), ("sent", True)]
        days = [row[0] for row in await conn.execute(text("SELECT day FROM sms_daily_counts"))]
        assert days == [_days_ago(10).date()]
        # The article stays; only its link to the purged push is cleared.
        link = await conn.execute(
            text("SELECT notification_id FROM news_items WHERE id = :a"), {"a": article}
        )
        assert link.scalar_one() is None
    async with transaction() as session:
        assert await receipt_counts(session, notification_id=year_old) == (250, 70)
        assert await receipt_counts(session, notification_id=month_old) == (250, 70)

    # A second night finds nothing more to do.
    again = await retention.purge(now=NOW)
    assert {k: v for k, v in again.items() if k != "complete"} == dict.fromkeys(
        ("languages", "devices", "deliveries", "receipts", "sms", "notifications"), 0
    )


async def test_forever_keeps_a_kind_and_a_receipt_arriving_later_is_still_counted(
    database_url, redis, owner_engine: AsyncEngine, small_batches: Settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(small_batches, "retention_notifications_days", None)
    async with owner_engine.begin() as conn:
        devices = await _devices(conn, 120)
        ancient = await _notification(conn, created=_days_ago(3000))
        await _children(conn, ancient, devices, opened=5)

    report = await retention.purge(now=NOW)
    assert report["notifications"] == 0 and report["receipts"] == 120
    async with owner_engine.begin() as conn:
        assert await _count(conn, "inbox_items", ancient) == 120
        late = (await _devices(conn, 1))[0]
        await conn.execute(
            text(
                "INSERT INTO receipts (notification_id, reader_id, received_at, opened_at)"
                " VALUES (:n, :r, now(), now())"
            ),
            {"n": ancient, "r": late},
        )
    async with transaction() as session:
        assert await receipt_counts(session, notification_id=ancient) == (121, 6)


def test_forever_is_a_word_and_the_floors_hold(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CHUONG_RETENTION_SMS_DAYS", "forever")
    assert Settings().retention_sms_days is None
    monkeypatch.setenv("CHUONG_RETENTION_REMINDERS_DAYS", "30")
    with pytest.raises(ValueError, match="retention_reminders_days"):
        Settings()


async def test_the_time_budget_stops_between_batches_and_the_next_night_resumes(
    database_url, redis, owner_engine: AsyncEngine, small_batches: Settings
):
    async with owner_engine.begin() as conn:
        devices = await _devices(conn, 450)
        old = await _notification(conn, created=_days_ago(400))
        await _children(conn, old, devices, opened=0)

    first = await retention.purge(now=NOW, budget_seconds=0)
    # Each kind still ran one batch: no kind starves behind another's backlog.
    assert first["deliveries"] == 100 and first["receipts"] == 100 and first["complete"] is False
    second = await retention.purge(now=NOW)
    assert second["deliveries"] == 350 and second["receipts"] == 350 and second["complete"] is True


async def test_the_worker_job_purges_the_reminder_ledger_too(
    database_url, redis, owner_engine: AsyncEngine, small_batches: Settings
):
    async with owner_engine.begin() as conn:
        rows = [
            ("sent", 400),
            ("dropped", 400),
            ("pending", 400),  # work, whatever its age
            ("sent", 100),  # inside the 365 days
        ]
        for status, age in rows:
            created = dt.datetime.now(dt.UTC) - dt.timedelta(days=age)
            await conn.execute(
                text(
                    "INSERT INTO tracking_reminders (subject_id, rule, occurrence, user_id, priority,"
                    " channel, status, due_at, created_at) VALUES (gen_random_uuid(), 'deadline', 'd1',"
                    " gen_random_uuid(), 'normal', 'push', :s, :c, :c)"
                ),
                {"s": status, "c": created},
            )

    report = await purge_job({})

    assert report["reminders"] == 2
    async with owner_engine.connect() as conn:
        left = sorted(row[0] for row in await conn.execute(text("SELECT status FROM tracking_reminders")))
    assert left == ["pending", "sent"]


async def test_deliveries_and_receipts_wait_for_the_language_summary(
    database_url, redis, owner_engine: AsyncEngine, small_batches: Settings
):
    """A finished push with a send batch still open (a worker still holds it after a cancel) is
    not summarised yet, so the purge keeps its deliveries and receipts, however old; once the
    batch is done the next purge summarises it first, then deletes them."""
    async with owner_engine.begin() as conn:
        devices = await _devices(conn, 150)
        old = await _notification(conn, created=_days_ago(400))
        await _children(conn, old, devices, opened=15)
        await conn.execute(
            text("UPDATE delivery_batches SET status = 'open' WHERE notification_id = :n"), {"n": old}
        )

    held = await retention.purge(now=NOW)
    assert (held["languages"], held["deliveries"], held["receipts"]) == (0, 0, 0)
    async with owner_engine.begin() as conn:
        assert await _count(conn, "deliveries", old) == 150 and await _count(conn, "receipts", old) == 150
        await conn.execute(
            text("UPDATE delivery_batches SET status = 'done' WHERE notification_id = :n"), {"n": old}
        )

    done = await retention.purge(now=NOW)
    assert (done["languages"], done["deliveries"], done["receipts"]) == (150, 150, 150)
    async with owner_engine.connect() as conn:
        summary = (
            await conn.execute(
                text(
                    "SELECT language, targeted, sent, received, opened FROM notification_languages"
                    " WHERE notification_id = :n"
                ),
                {"n": old},
            )
        ).all()
    assert [tuple(row) for row in summary] == [("vi", 150, 150, 150, 15)]
