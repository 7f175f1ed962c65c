"""Migration 0010: devices get the network they registered from and the first use of their
credential (both NULL for devices that existed before); downgrade removes them."""

import asyncpg

from tests.notifications.test_batch_migration import _migrate


async def test_upgrade_adds_registration_origin_and_downgrade_removes_it(databases):
    name = await databases.create_copy()
    url = databases.owner_url(name)
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    try:
        await _migrate(url, "downgrade", "0009")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "INSERT INTO devices (id, app, platform, provider, token, locale)"
                " VALUES (gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-before', 'vi')"
            )
        finally:
            await conn.close()

        await _migrate(url, "upgrade", "0010")
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow("SELECT registered_network, credential_used_at FROM devices")
            assert tuple(row) == (None, None)
            await conn.execute(
                "INSERT INTO devices (id, app, platform, provider, token, locale, registered_network)"
                " VALUES (gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-after', 'vi', '203.0.113.0/24')"
            )
            inside = await conn.fetchval(
                "SELECT count(*) FROM devices WHERE registered_network <<= '203.0.0.0/16'::cidr"
            )
            assert inside == 1
            assert await conn.fetchval("SELECT to_regclass('ix_devices_anonymous_created')") is not None
        finally:
            await conn.close()

        await _migrate(url, "downgrade", "0009")
        conn = await asyncpg.connect(dsn)
        try:
            columns = {
                r["column_name"]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'devices'"
                )
            }
            assert not {"registered_network", "credential_used_at"} & columns
            assert await conn.fetchval("SELECT to_regclass('ix_devices_anonymous_created')") is None
            assert await conn.fetchval("SELECT count(*) FROM devices") == 2
        finally:
            await conn.close()
    finally:
        await databases.drop(name)
