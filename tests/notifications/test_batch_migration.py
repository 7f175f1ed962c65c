"""Migration 0009: rows open at upgrade time (pending, retrying, or held by a worker of the old
code) get batches, so the new send path and the reconciler find them; downgrade undoes it."""

import asyncio

import asyncpg
from alembic import command

from cli.migration_config import alembic_config


async def _migrate(url: str, action: str, revision: str) -> None:
    config = alembic_config(url)
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(getattr(command, action), config, revision)


async def test_upgrade_gives_open_rows_batches_and_downgrade_removes_them(databases):
    name = await databases.create_copy()
    url = databases.owner_url(name)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    try:
        await _migrate(url, "downgrade", "0008")
        conn = await asyncpg.connect(dsn)
        try:
            nid = await conn.fetchval(
                """INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
                       audience, created_by_kind, created_by_id, expires_at, status)
                   VALUES (gen_random_uuid(), 'portal', 'k', 'high', 'public', '{"vi": "a"}', '{"vi": "b"}',
                       60, '{"all": true}', 'user', gen_random_uuid(), now() + interval '1 hour', 'sending')
                   RETURNING id"""
            )
            await conn.execute(
                "INSERT INTO devices (id, app, platform, provider, token, locale)"
                " SELECT gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-' || g, 'vi'"
                " FROM generate_series(1, 1200) AS g"
            )
            # A quarter each: pending, held by a worker (old 'sending'), sent, retrying.
            await conn.execute(
                "INSERT INTO deliveries (notification_id, device_id, provider, language, status)"
                " SELECT $1, id, 'fcm', 'vi', (ARRAY['pending', 'sending', 'sent', 'retrying'])[1 + n % 4]"
                " FROM (SELECT id, row_number() OVER () AS n FROM devices) AS d",
                nid,
            )
        finally:
            await conn.close()

        await _migrate(url, "upgrade", "head")
        conn = await asyncpg.connect(dsn)
        try:
            statuses = dict(await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status"))
            assert statuses == {"pending": 600, "retrying": 300, "sent": 300}
            batches = await conn.fetch("SELECT low_id, high_id, status FROM delivery_batches ORDER BY low_id")
            assert [b["status"] for b in batches] == ["open", "open"]
            covered = await conn.fetchval(
                "SELECT count(*) FROM deliveries d JOIN delivery_batches b"
                " ON d.id BETWEEN b.low_id AND b.high_id AND d.notification_id = b.notification_id"
                " WHERE d.status IN ('pending', 'retrying')"
            )
            assert covered == 900
            assert await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'") == [
                "fillfactor=40"
            ]
        finally:
            await conn.close()

        await _migrate(url, "downgrade", "0008")
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT to_regclass('delivery_batches')") is None
            assert await conn.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'") is None
        finally:
            await conn.close()
    finally:
        await databases.drop(name)
