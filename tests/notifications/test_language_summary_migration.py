"""Migration 0024: the language summary's table and columns, added without touching existing rows;
existing notifications are summarised afterwards by the fold (what retention already reduced to
totals under ``unknown``, kept deliveries per language); downgrade removes it all."""

import datetime as dt

import asyncpg

from notifications import language_summary
from tests.notifications.test_batch_migration import _migrate

PUSH = """INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
       audience, created_by_kind, created_by_id, expires_at, status, created_at, completed_at,
       targeted, sent, invalid, deliveries_purged_at, receipts_received, receipts_opened)
       VALUES (gen_random_uuid(), 'portal', 'k', 'high', 'public', '{"vi": "a"}', '{"vi": "b"}', 60, '{}',
       'user', gen_random_uuid(), now(), 'completed', now(), now(), $1, $2, $3, $4, $5, $6) RETURNING id"""


async def test_upgrade_adds_the_summary_the_fold_fills_for_old_pushes_and_downgrade_removes_it(databases):
    name = await databases.create_copy()
    url = databases.owner_url(name)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    try:
        await _migrate(url, "downgrade", "0024-1")
        conn = await asyncpg.connect(dsn)
        try:
            # Purged before the summary existed: counters and receipt sums only.
            purged = await conn.fetchval(PUSH, 10, 9, 1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 7, 3)
            # Deliveries still kept: two Vietnamese devices, one English (invalid), one receipt.
            kept = await conn.fetchval(PUSH, 3, 2, 1, None, None, None)
            for language, status in (("vi", "sent"), ("vi", "sent"), ("en", "invalid")):
                device = await conn.fetchval(
                    "INSERT INTO devices (id, app, platform, provider, token, locale) VALUES"
                    " (gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-' || gen_random_uuid(), $1)"
                    " RETURNING id",
                    language,
                )
                await conn.execute(
                    "INSERT INTO deliveries (notification_id, device_id, provider, language, status)"
                    " VALUES ($1, $2, 'fcm', $3, $4)",
                    kept,
                    device,
                    language,
                    status,
                )
            await conn.execute(
                "INSERT INTO receipts (notification_id, reader_id, device_id, received_at)"
                " SELECT notification_id, device_id, device_id, now() FROM deliveries LIMIT 1"
            )
        finally:
            await conn.close()

        await _migrate(url, "upgrade", "0024")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM notification_languages") == 0
            assert await conn.fetchval("SELECT count(*) FROM receipts WHERE language IS NULL") == 1
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM notifications WHERE languages_summarized_at IS NULL"
                )
                == 2
            )
            # The fold the job runs after the upgrade (the same statement, on this copy).
            fold = str(language_summary._FOLD_DEVICES).replace(":ids", "$1")
            await conn.execute(fold, [purged, kept])
            await conn.execute(fold, [purged, kept])  # a second run adds nothing
            rows = await conn.fetch(
                "SELECT notification_id, language, targeted, sent, invalid, failed, received, opened"
                " FROM notification_languages ORDER BY notification_id, language"
            )
            assert {(r[0], r[1]): tuple(r[2:]) for r in rows} == {
                (purged, "unknown"): (10, 9, 1, 0, 7, 3),
                (kept, "en"): (1, 0, 1, 0, 0, 0),
                (kept, "vi"): (2, 2, 0, 0, 0, 0),
            }
        finally:
            await conn.close()

        await _migrate(url, "downgrade", "0024-1")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT to_regclass('notification_languages')") is None
            columns = {
                (r["table_name"], r["column_name"])
                for r in await conn.fetch(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_name IN ('notifications', 'receipts')"
                )
            }
            assert not {("notifications", "languages_summarized_at"), ("receipts", "language")} & columns
            assert await conn.fetchval("SELECT count(*) FROM receipts") == 1
        finally:
            await conn.close()
    finally:
        await databases.drop(name)
