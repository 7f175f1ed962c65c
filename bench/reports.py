"""Push reports (news/reports.py): EXPLAIN ANALYZE of the report statements on realistic rows.

    PYTHONPATH=$PWD .venv/bin/python -m bench.reports          # BROADCASTS=60 DEVICES=20000 PLAN=1

A copy of the test template database (tests/support/databases.py) gets 60 component portals
with 300 pushes each over the past year, already past retention (counters, receipt sums and their
per-language summary only), plus BROADCASTS pushes to DEVICES devices in the last month with
their deliveries and receipts kept (10 % opened; each receipt with its language, as the inbox
writes it). Prints each statement's execution time and the CPU time of its PostgreSQL backend
(read from /proc: run it on the database's host) for a year by month and a month by week: the
totals alone, the language split as it was before the summary (``before:language``, every
delivery and receipt joined), and the report with its language split now (``all+languages``),
first with the broadcasts not yet folded (as while they are sending: their deliveries read live),
then after folding them (the fold's own time is printed too). PLAN=1 also prints the plans. The
database is dropped afterwards.
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
from notifications import language_summary
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
    # ... summarised by language when their sending ended and their receipts were purged.
    """WITH old AS (UPDATE notifications SET languages_summarized_at = now()
                     WHERE deliveries_purged_at IS NOT NULL RETURNING id)
       INSERT INTO notification_languages (notification_id, language, targeted, sent, received, opened)
       SELECT old.id, l.language, l.share * 10, l.share * 10 - (l.share / 10), l.share * 8, l.share * 8 / 10
         FROM old, (VALUES ('vi', 50), ('en', 20), ('zh', 10), ('fr', 10), ('es', 5), ('ru', 5))
              AS l(language, share)""",
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
    """INSERT INTO receipts (notification_id, reader_id, device_id, received_at, opened_at, language)
       SELECT notification_id, device_id, device_id, now(), CASE WHEN id % 10 = 0 THEN now() END, language
         FROM deliveries""",
]
ARGS: list[tuple[int, ...]] = [(), (DEVICES,), (), (), (BROADCASTS, DEVICES), ()]

# The language split as it was before the summary (news/reports.py until issue 19's summary):
# every kept delivery and receipt of the range, matched on (notification, device) by a full join.
BEFORE_LANGUAGE = f"""WITH {reports._IN_RANGE},
    d AS (
        SELECT n.period, n.app, n.unit_id, d.notification_id, d.device_id, d.language, d.status
          FROM n JOIN deliveries d ON d.notification_id = n.id
    ),
    r AS (
        SELECT n.period, n.app, n.unit_id, r.notification_id, r.device_id, r.received_at, r.opened_at
          FROM n JOIN receipts r ON r.notification_id = n.id
    ),
    parts AS (
        SELECT coalesce(d.period, r.period) AS period, coalesce(d.app, r.app) AS app,
               coalesce(d.unit_id, r.unit_id) AS unit_id, coalesce(d.language, dv.locale, 'unknown') AS key,
               (d.notification_id IS NOT NULL)::int AS targeted,
               (d.status = 'sent')::int AS sent, (d.status = 'invalid')::int AS invalid,
               (d.status = 'failed')::int AS failed,
               (r.received_at IS NOT NULL)::int AS received, (r.opened_at IS NOT NULL)::int AS opened
          FROM d FULL JOIN r ON r.notification_id = d.notification_id AND r.device_id = d.device_id
          LEFT JOIN devices dv ON d.notification_id IS NULL AND dv.id = r.device_id
        UNION ALL
        SELECT n.period, n.app, n.unit_id, 'unknown',
               CASE WHEN n.deliveries_gone THEN n.targeted ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.sent ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.invalid ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.failed ELSE 0 END,
               n.purged_received, n.purged_opened
          FROM n WHERE n.deliveries_gone OR n.purged_received > 0 OR n.purged_opened > 0
    )
    SELECT 'language' AS breakdown, period, app, unit_id, key, 0 AS notifications,
           sum(targeted) AS targeted, coalesce(sum(sent), 0) AS sent, coalesce(sum(invalid), 0) AS invalid,
           coalesce(sum(failed), 0) AS failed, sum(received) AS received, sum(opened) AS opened
      FROM parts GROUP BY period, app, unit_id, key"""  # noqa: S608 - fixed fragments, values are parameters


def positional(statement: object) -> str:
    sql = str(statement)
    for index, name in enumerate(("grain", "since", "until", "app", "prefix"), start=1):
        sql = sql.replace(f":{name}", f"${index}")
    return sql


STATEMENTS: list[tuple[str, object]] = [
    ("totals+sections", reports._TOTALS_AND_SECTIONS),
    ("before:language", BEFORE_LANGUAGE),
    ("all+languages", reports._ALL_BREAKDOWNS),
]


async def measure(conn: asyncpg.Connection, backend: int, phase: str) -> None:
    print(f"-- {phase}, loadavg {os.getloadavg()}")
    today = dt.date.today()
    grains: tuple[tuple[reports.Grain, int], ...] = (("month", 365), ("week", 30))
    for grain, days in grains:
        query = reports.ReportQuery(grain=grain, start=today - dt.timedelta(days=days), end=today)
        since, until = query.bounds()
        for label, statement in STATEMENTS:
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
        await measure(conn, backend, "broadcasts not folded")
        # The fold the minutely cron runs once a broadcast has ended (notifications/language_summary.py).
        ids = await conn.fetch("SELECT id FROM notifications WHERE languages_summarized_at IS NULL")
        cpu, started = cpu_seconds(backend), time.perf_counter()
        fold = str(language_summary._FOLD_DEVICES).replace(":ids", "$1")
        await conn.execute(fold, [row["id"] for row in ids])
        cpu, wall = cpu_seconds(backend) - cpu, time.perf_counter() - started
        deliveries = len(ids) * DEVICES
        print(f"fold of {len(ids)} broadcasts ({deliveries} deliveries): {wall * 1000:.0f} ms wall", end="")
        print(f" {cpu * 1000:.0f} ms CPU")
        await conn.execute("ANALYZE notification_languages")
        await measure(conn, backend, "broadcasts folded")
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
