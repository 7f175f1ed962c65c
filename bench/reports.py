"""Push reports (news/reports.py): EXPLAIN ANALYZE of the report statements on realistic rows.

    PYTHONPATH=$PWD .venv/bin/python -m bench.reports          # BROADCASTS=60 DEVICES=20000 PLAN=1

A copy of the test template database (tests/support/databases.py) gets 60 component portals
with 300 pushes each over the past year, already past retention (counters and receipt sums
only), plus BROADCASTS pushes to DEVICES devices in the last month with their deliveries and
receipts kept (10 % opened). Prints each statement's execution time and the CPU time of its
PostgreSQL backend (read from /proc: run it on the database's host) for a year by month and a
month by week; PLAN=1 also prints the plans. The database is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time

import asyncpg

import tests.conftest  # noqa: F401 (sets the test environment the template database needs)
from bench.support import cpu_seconds
from news import reports
from tests.support.databases import TestDatabases

BROADCASTS = int(os.environ.get("BROADCASTS", "60"))
DEVICES = int(os.environ.get("DEVICES", "20000"))
PUSH = """INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
       audience, created_by_kind, created_by_id, unit_id, expires_at, status, created_at, completed_at,
       targeted, sent, deliveries_purged_at, receipts_purged_at, receipts_received, receipts_opened)"""

SETUP = [
    """INSERT INTO units (id, code, name, kind, path, depth)
       SELECT gen_random_uuid(), 'U' || g, 'Cổng ' || g, 'province',
              replace(gen_random_uuid()::text, '-', '') || '/', 0
         FROM generate_series(1, 60) g""",
    """INSERT INTO devices (id, app, platform, provider, token, locale)
       SELECT gen_random_uuid(), 'portal', 'android', 'fcm', 'tok-' || g,
              (ARRAY['vi', 'en', 'zh', 'fr', 'es', 'ru'])[1 + g % 6]
         FROM generate_series(1, $1::int) g""",
    # A year of pushes of every portal, past retention: counters and receipt sums only.
    PUSH  # noqa: S608 (constants)
    + """ SELECT gen_random_uuid(), 'portal', 'k', 'high', 'public', '{"vi":"a"}', '{"vi":"b"}', 60, '{}',
              'user', gen_random_uuid(), u.id, now(), 'completed', now() - g * interval '29 hours', now(),
              1000, 990, now(), now(), 800, 80
         FROM units u, generate_series(1, 300) g""",
    # The last month's broadcasts with their deliveries kept.
    """WITH n AS (
         INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds, audience,
                created_by_kind, created_by_id, unit_id, expires_at, status, created_at, completed_at,
                targeted, sent)
         SELECT gen_random_uuid(), 'portal', 'k', 'high', 'public', '{"vi":"a"}', '{"vi":"b"}', 60, '{}',
                'user', gen_random_uuid(), (SELECT id FROM units ORDER BY code LIMIT 1), now(), 'completed',
                now() - g * interval '12 hours', now(), $2::int, $2::int
           FROM generate_series(1, $1::int) g RETURNING id)
       INSERT INTO deliveries (notification_id, device_id, provider, language, status)
       SELECT n.id, d.id, 'fcm', d.locale, 'sent' FROM n, devices d""",
    """INSERT INTO receipts (notification_id, reader_id, device_id, received_at, opened_at)
       SELECT notification_id, device_id, device_id, now(), CASE WHEN id % 10 = 0 THEN now() END
         FROM deliveries""",
]
ARGS: list[tuple[int, ...]] = [(), (DEVICES,), (), (BROADCASTS, DEVICES), ()]


def positional(statement: object) -> str:
    sql = str(statement)
    for index, name in enumerate(("grain", "since", "until", "app", "prefix"), start=1):
        sql = sql.replace(f":{name}", f"${index}")
    return sql


async def main(dbs: TestDatabases) -> None:
    name = await dbs.create_copy()
    conn = await asyncpg.connect(dbs.owner_url(name).replace("postgresql+asyncpg", "postgresql"))
    try:
        started = time.perf_counter()
        for sql, args in zip(SETUP, ARGS, strict=True):
            await conn.execute(sql, *args)
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("SET jit = off")  # as news/reports.py does
        counts = {
            table: await conn.fetchval(query)
            for table, query in (
                ("notifications", "SELECT count(*) FROM notifications"),
                ("deliveries", "SELECT count(*) FROM deliveries"),
                ("receipts", "SELECT count(*) FROM receipts"),
            )
        }
        print("rows", counts, f"loaded in {time.perf_counter() - started:.1f}s", "loadavg", os.getloadavg())
        backend = await conn.fetchval("SELECT pg_backend_pid()")  # its CPU time, from /proc
        today = dt.date.today()
        grains: tuple[tuple[reports.Grain, int], ...] = (("month", 365), ("week", 30))
        for grain, days in grains:
            query = reports.ReportQuery(grain=grain, start=today - dt.timedelta(days=days), end=today)
            since, until = query.bounds()
            for label, statement in reports._explained():
                params: tuple[object, ...] = (grain, since, until, None, None)
                cpu = cpu_seconds(backend)
                plan = await conn.fetchval(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + positional(statement), *params
                )
                cpu = cpu_seconds(backend) - cpu
                wall = json.loads(plan)[0]["Execution Time"]
                print(f"{grain:5} {days:3}d {label:16} {wall:8.0f} ms wall {cpu * 1000:8.0f} ms CPU")
                if os.environ.get("PLAN"):
                    rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + positional(statement), *params)
                    print("\n".join(row[0] for row in rows))
    finally:
        await conn.close()
        await dbs.drop(name)


if __name__ == "__main__":
    databases = TestDatabases.from_env()
    databases.prepare_template()
    try:
        asyncio.run(main(databases))
    finally:
        databases.cleanup()
