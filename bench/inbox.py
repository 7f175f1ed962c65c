"""Inbox read path at scale: unread count and first page for random readers, with a million
per-recipient rows of other readers and thousands of broadcasts in the 90-day window.

    .venv/bin/python -m bench.inbox [--rows 1000000] [--readers 100000] [--broadcasts 3000]

A broadcast writes no per-reader rows, so the number of readers it reaches does not appear
here at all: what matters is how many broadcasts and own rows one reader's queries touch.
Uses a scratch database (created and dropped) on the local PostgreSQL as ``postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import statistics
import time
import uuid
from typing import TYPE_CHECKING

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

if TYPE_CHECKING:
    from inbox.readers import Reader

DB = f"chuong_bench_inbox_{uuid.uuid4().hex[:6]}"
HOST = "127.0.0.1"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=HOST, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _populate(rows: int, readers: int, broadcasts: int) -> None:
    conn = await asyncpg.connect(host=HOST, user="postgres", database=DB)
    try:
        await conn.execute(
            """
            INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
                audience, created_by_kind, created_by_id, status, created_at, expires_at)
            SELECT gen_random_uuid(), 'portal', 'breaking_news', 'normal', 'public',
                '{"vi": "Tin"}', '{"vi": "Nội dung"}', 3600,
                CASE WHEN g % 3 = 0 THEN '{"all": true, "topics": []}'::jsonb
                     ELSE jsonb_build_object('all', false, 'topics', jsonb_build_array('t' || (g % 5)))
                END,
                'user', gen_random_uuid(), 'completed',
                now() - make_interval(secs => g * (86400.0 * 89 / $1::int)), now()
            FROM generate_series(1, $1::int) AS g
            """,
            broadcasts,
        )
        # Targeted notifications, each to 1,000 readers: rows / 1000 notifications.
        await conn.execute(
            """
            INSERT INTO notifications (id, app, kind, priority, sensitivity, title, body, ttl_seconds,
                audience, created_by_kind, created_by_id, status, created_at, expires_at)
            SELECT gen_random_uuid(), 'tracking', 'task.reminder', 'normal', 'internal',
                '{"vi": "Nhắc việc"}', '{"vi": "Hạn"}', 3600,
                '{"all": false, "topics": [], "units": ["x"]}', 'user', gen_random_uuid(), 'completed',
                now() - make_interval(secs => g * 60), now()
            FROM generate_series(1, $1::int) AS g
            """,
            max(1, rows // 1000),
        )
        await conn.execute(
            """
            INSERT INTO inbox_items (reader_id, notification_id, app, created_at, read_at)
            SELECT ('00000000-0000-0000-0000-'
                    || lpad(to_hex(((n.k * 1000 + g) * 7919) % $1::int), 12, '0'))::uuid,
                   n.id, 'tracking', n.created_at, CASE WHEN g % 4 = 0 THEN NULL ELSE now() END
            FROM (SELECT id, created_at, row_number() OVER () AS k FROM notifications
                  WHERE app = 'tracking') n
            JOIN generate_series(1, 1000) AS g ON true
            ON CONFLICT DO NOTHING
            """,
            readers,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _reader(index: int) -> Reader:
    from inbox.readers import Reader

    return Reader(
        id=uuid.UUID(f"00000000-0000-0000-0000-{index:012x}"),
        kind="user",
        language="vi",
        since=dt.datetime.now(dt.UTC) - dt.timedelta(days=90),
        subscriptions={"portal": [f"t{index % 5}"], "tracking": []},
    )


async def _measure(readers: int, samples: int) -> dict[str, list[float]]:
    from core.db import configure_engine, dispose_engine, transaction
    from inbox import queries

    configure_engine(create_async_engine(f"postgresql+asyncpg://postgres@{HOST}/{DB}"))
    timings: dict[str, list[float]] = {
        "unread count": [],
        "first page (20)": [],
        "unread count after read-all": [],
    }
    try:
        for _ in range(samples):
            reader = _reader(random.randrange(readers))
            async with transaction() as session:
                markers = await queries.load_markers(session, reader)
                started = time.perf_counter()
                await queries.unread_count(session, reader, app=None, markers=markers)
                timings["unread count"].append(time.perf_counter() - started)
                started = time.perf_counter()
                await queries.page(session, reader, queries.Filters(), markers=markers, before=None, limit=20)
                timings["first page (20)"].append(time.perf_counter() - started)
                marked = {
                    "portal": queries.Marker(
                        position=(dt.datetime.now(dt.UTC) - dt.timedelta(days=2), uuid.UUID(int=0)),
                        updated_at=dt.datetime.now(dt.UTC),
                    )
                }
                started = time.perf_counter()
                await queries.unread_count(session, reader, app=None, markers=marked)
                timings["unread count after read-all"].append(time.perf_counter() - started)
    finally:
        await dispose_engine()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="per-recipient inbox rows")
    parser.add_argument("--readers", type=int, default=100_000, help="readers owning those rows")
    parser.add_argument("--broadcasts", type=int, default=3_000, help="broadcasts in the 90-day window")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(_admin(f'CREATE DATABASE "{DB}"'))
    try:
        config = Config("alembic.ini")
        config.attributes["database_url"] = f"postgresql+asyncpg://postgres@{HOST}/{DB}"
        command.upgrade(config, "head")
        started = time.perf_counter()
        asyncio.run(_populate(args.rows, args.readers, args.broadcasts))
        seconds = time.perf_counter() - started
        print(f"populated {args.rows:,} inbox rows, {args.broadcasts:,} broadcasts in {seconds:.1f} s\n")
        timings = asyncio.run(_measure(args.readers, args.samples))
        print("| query | median ms | p95 ms |\n|---|---:|---:|")
        for label, values in timings.items():
            p95 = statistics.quantiles(values, n=20)[18] * 1000
            print(f"| {label} | {statistics.median(values) * 1000:.2f} | {p95:.2f} |")
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
