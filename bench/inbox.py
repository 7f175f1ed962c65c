"""Inbox read path at scale: unread count and first page for random readers, with a million
per-recipient rows of other readers and thousands of broadcasts in the 90-day window.

    .venv/bin/python -m bench.inbox [--rows 1000000] [--readers 100000] [--broadcasts 3000]
    .venv/bin/python -m bench.inbox --badges-on chuong_bench_inbox_http [--devices 100000]

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
from sqlalchemy.ext.asyncio import create_async_engine

from cli.migration_config import alembic_config

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


def reader_id(index: int) -> uuid.UUID:
    """The id of reader ``index``: the per-recipient rows below are spread over these ids, and
    bench/inbox_http.py registers a portal device under each of them."""
    return uuid.UUID(int=index)


async def populate(database: str, *, rows: int, readers: int, broadcasts: int) -> None:
    """Broadcasts spread over 89 days (a third to all readers, the rest to one of topics t0–t4)
    and ``rows`` per-recipient rows (a quarter unread) of targeted notifications, each to 1,000
    of the readers ``reader_id(0 … readers-1)``."""
    conn = await asyncpg.connect(host=HOST, user="postgres", database=database)
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
        id=reader_id(index),
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


async def measure_badges(database: str, *, devices: int, batch: int) -> dict[str, float]:
    """The badges of one push to ``devices`` readers (device ids reader_id(0 …), as
    bench/inbox_http.py registers them), batch by batch as the send job computes them."""
    from bench.support import postgres_cpu_seconds
    from core.db import configure_engine, dispose_engine, transaction
    from inbox.badges import unread_badges

    configure_engine(create_async_engine(f"postgresql+asyncpg://postgres@{HOST}/{database}"))
    try:
        conn = await asyncpg.connect(host=HOST, user="postgres", database=database)
        try:
            notification_id = await conn.fetchval(
                "SELECT id FROM notifications WHERE app = 'portal' ORDER BY created_at DESC LIMIT 1"
            )
        finally:
            await conn.close()
        ids = [reader_id(i) for i in range(devices)]
        async with transaction() as session:  # warm-up: connection, prepared statements, window
            await unread_badges(session, notification_id=notification_id, device_ids=ids[:batch], now=_now())
        wall, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
        total = 0
        for start in range(0, devices, batch):
            async with transaction() as session:
                badges = await unread_badges(
                    session,
                    notification_id=notification_id,
                    device_ids=ids[start : start + batch],
                    now=_now(),
                )
            total += sum(badges.values())
        wall, cpu, pg = time.perf_counter() - wall, time.process_time() - cpu, postgres_cpu_seconds() - pg
    finally:
        await dispose_engine()
    return {
        "deliveries": devices,
        "batches": -(-devices // batch),
        "ms per batch": wall * 1000 / -(-devices // batch),
        "wall ms per delivery": wall * 1000 / devices,
        "worker CPU ms per delivery": cpu * 1000 / devices,
        "PostgreSQL CPU ms per delivery": pg * 1000 / devices,
        "mean badge": total / devices,
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="per-recipient inbox rows")
    parser.add_argument("--readers", type=int, default=100_000, help="readers owning those rows")
    parser.add_argument("--broadcasts", type=int, default=3_000, help="broadcasts in the 90-day window")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--badges-on",
        metavar="DATABASE",
        help="instead: time push badges on a database built by `bench.inbox_http --setup-only`",
    )
    parser.add_argument("--devices", type=int, default=100_000, help="with --badges-on")
    args = parser.parse_args()
    if args.badges_on:
        figures = asyncio.run(measure_badges(args.badges_on, devices=args.devices, batch=500))
        print("\n".join(f"{name}: {value:,.3f}" for name, value in figures.items()))
        return
    asyncio.run(_admin(f'CREATE DATABASE "{DB}"'))
    try:
        command.upgrade(alembic_config(f"postgresql+asyncpg://postgres@{HOST}/{DB}"), "head")
        started = time.perf_counter()
        asyncio.run(populate(DB, rows=args.rows, readers=args.readers, broadcasts=args.broadcasts))
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
