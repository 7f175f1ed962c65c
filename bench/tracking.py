"""The reminder sweep at scale: 1,000,000 tasks, 100,000 users, 64 units, 20,000 KPI periods.

    .venv/bin/python -m bench.tracking [--tasks 1000000] [--users 100000] [--send 2000] [--fields 40]

Deadlines are spread over a year around the sweep instant (Monday 30 November 2026, 08:00:30
Asia/Ho_Chi_Minh, the first minute of a working week), most past tasks done, most future ones
open; a few percent of users have quiet hours or the daily digest. Measured:

1. a warm-up sweep at the previous working day's last minute (fills the ledger with what earlier
   sweeps would have sent, so the catch-up window is in its steady state);
2. **the sweep of Monday 08:00:30**: finds every due reminder, writes it to the ledger and queues
   the senders (the figure the issue asks for: ≤ 5 s);
3. the next minute's sweep (nothing new: the cost of an ordinary tick);
4. the sender turning ``--send`` ledger rows into notifications, as the ``tracking_send`` job
   does: rows per second, statements per notification, CPU of the sender and of its PostgreSQL
   backend. ``--keep`` keeps the database; ``--reuse NAME`` then runs only step 4 again (the
   sent rows back to pending first), so that two versions of the sender can be run alternately
   on the same data.

Uses a scratch database (created and dropped) on the local PostgreSQL as ``postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
import uuid
from typing import Any

import asyncpg
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cli.migration_config import alembic_config

DB = f"chuong_bench_tracking_{uuid.uuid4().hex[:6]}"
HOST = "127.0.0.1"
UNITS = 64
KPIS = 20_000
SWEEP_AT = "2026-11-30 08:00:30"
WARM_UP_AT = "2026-11-27 16:59:00"  # Friday, the last minute of the previous working day


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=HOST, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def populate(database: str, *, tasks: int, users: int) -> None:
    conn = await asyncpg.connect(host=HOST, user="postgres", database=database)
    try:
        # Unit 0 is the central standing agency; units 1…63 its provinces.
        await conn.execute(
            """
            INSERT INTO units (id, parent_id, code, name, kind, path, depth)
            SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
                   CASE WHEN g = 0 THEN NULL ELSE '00000000-0000-4000-8000-000000000000'::uuid END,
                   'U' || g, 'Đơn vị ' || g, CASE WHEN g = 0 THEN 'central' ELSE 'province' END,
                   CASE WHEN g = 0 THEN '00000000000040008000000000000000/'
                        ELSE '00000000000040008000000000000000/'
                             || replace(('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0')), '-', '')
                             || '/' END,
                   CASE WHEN g = 0 THEN 0 ELSE 1 END
            FROM generate_series(0, $1::int - 1) AS g
            """,
            UNITS,
        )
        # Users: unit = g % 64; per unit a few leaders and approvers, the rest task officers.
        await conn.execute(
            """
            INSERT INTO users (id, username, full_name, unit_id, role, password_hash)
            SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, 'u' || g, 'Cán bộ ' || g,
                   ('00000000-0000-4000-8000-' || lpad(to_hex(g % $2::int), 12, '0'))::uuid,
                   CASE WHEN g < $2::int * 3 THEN 'leader'
                        WHEN g < $2::int * 6 THEN 'task_approver' ELSE 'task_officer' END,
                   'x'
            FROM generate_series(0, $1::int - 1) AS g
            """,
            users,
            UNITS,
        )
        await conn.execute(
            """
            INSERT INTO tracking_preferences (user_id, quiet_start, quiet_end, daily_digest)
            SELECT ('00000000-0000-4000-9000-' || lpad(to_hex(g), 12, '0'))::uuid,
                   CASE WHEN g % 20 = 0 THEN time '12:00' END, CASE WHEN g % 20 = 0 THEN time '13:30' END,
                   g % 50 = 1
            FROM generate_series(0, $1::int - 1) AS g WHERE g % 20 = 0 OR g % 50 = 1
            """,
            users,
        )
        # Tasks: deadlines over 365 days from 2026-06-01; 85 % of past ones done, 10 % of future.
        # One or two responsible officers of the lead unit; 1 % priority 1 (emergency).
        await conn.execute(
            """
            INSERT INTO tracking_tasks (id, code, name, group_code, lead_unit_id, cooperating_unit_ids,
                responsible_user_ids, deadline, deadline_date, priority, result_status, classified,
                received_at, confirmed_at, version)
            SELECT gen_random_uuid(), 'T' || g, 'Nhiệm vụ ' || g, 'G' || (g % 40),
                   ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % ($3::int - 1)), 12, '0'))::uuid,
                   '{}',
                   CASE WHEN g % 3 = 0 THEN ARRAY[o1, o2] ELSE ARRAY[o1] END,
                   (d + time '10:00') AT TIME ZONE 'UTC', d,
                   CASE WHEN g % 100 = 0 THEN 1 ELSE 2 + g % 4 END,
                   CASE WHEN d < date '2026-11-30' AND g % 20 < 17 THEN 'done'
                        WHEN d >= date '2026-11-30' AND g % 10 = 0 THEN 'done' ELSE 'in_progress' END,
                   g % 50 = 0,
                   d - 60, d - 59, 1
            FROM (
                SELECT g, date '2026-06-01' + (g % 365) AS d,
                       ('00000000-0000-4000-9000-' || lpad(to_hex(
                            ($3::int * 6 + ((g::bigint * 7919) % ($2::int - $3::int * 7))) / $3::int * $3::int
                            + 1 + g % ($3::int - 1)), 12, '0'))::uuid AS o1,
                       ('00000000-0000-4000-9000-' || lpad(to_hex(
                            ($3::int * 6 + ((g::bigint * 104729) % ($2::int - $3::int * 7)))
                            / $3::int * $3::int + 1 + g % ($3::int - 1)), 12, '0'))::uuid AS o2
                FROM generate_series(1, $1::int) AS g
            ) s
            """,
            tasks,
            users,
            UNITS,
        )
        # Newly received, unconfirmed tasks: the 8-working-hour window is running for 2,000 of them.
        await conn.execute(
            """
            UPDATE tracking_tasks SET confirmed_at = NULL,
                   received_at = timestamptz '2026-11-27 09:00+07'
                                 + make_interval(secs => (random() * 7 * 3600))
            WHERE code IN (SELECT 'T' || g FROM generate_series(1, 2000) AS g)
            """
        )
        await conn.execute(
            """
            INSERT INTO tracking_kpis (id, code, period, period_kind, name, unit_id, responsible_user_ids,
                report_due, version)
            SELECT gen_random_uuid(), 'A.' || g, '2026-11', 'month', 'Chỉ số ' || g,
                   ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % ($2::int - 1)), 12, '0'))::uuid,
                   ARRAY[('00000000-0000-4000-9000-'
                          || lpad(to_hex($2::int * 10 + g % ($3::int - $2::int * 10)), 12, '0'))::uuid],
                   date '2026-11-20' + (g % 30), 1
            FROM generate_series(1, $1::int) AS g
            """,
            KPIS,
            UNITS,
            users,
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _at(local: str) -> dt.datetime:
    from core.workcalendar import TIMEZONE

    return dt.datetime.fromisoformat(local).replace(tzinfo=TIMEZONE).astimezone(dt.UTC)


async def _sweep_once(now: dt.datetime) -> tuple[float, int, int, int]:
    """One sweep as the cron job runs it (sweep, count pending, queue senders, commit)."""
    from core.config import get_settings
    from core.db import transaction
    from core.jobs import JobName, defer, take_deferred
    from tracking import sender
    from tracking.calendar import load_calendar
    from tracking.rules import get_rules
    from tracking.sweep import sweep

    started = time.perf_counter()
    async with transaction() as session:
        calendar = await load_calendar(session)
        result = await sweep(session, now=now, calendar=calendar, rules=get_rules())
        pending = await sender.pending_push_count(session)
        senders = min(4, -(-pending // get_settings().tracking_send_chunk))
        for n in range(senders):
            defer(session, JobName.TRACKING_SEND, job_id=f"tracking-send:{n}")
    seconds = time.perf_counter() - started
    take_deferred(session)  # the benchmark has no Redis queue to feed
    return seconds, result.pushes, result.digests, pending


async def add_fields(name: str, *, fields: int) -> None:
    """``--fields N``: N fields of responsibility (D-16), every task in one of them, and three
    leaders of other units in charge of each, so that escalations also reach field leaders."""
    conn = await asyncpg.connect(host=HOST, user="postgres", database=name)
    try:
        await conn.execute(
            """
            INSERT INTO tracking_fields (id, code, name_vi, name_en)
            SELECT ('00000000-0000-4000-a000-' || lpad(to_hex(f), 12, '0'))::uuid, 'F' || f,
                   'Lĩnh vực ' || f, 'Field ' || f
            FROM generate_series(0, $1::int - 1) AS f
            """,
            fields,
        )
        await conn.execute(
            """
            UPDATE tracking_tasks
               SET field_id = ('00000000-0000-4000-a000-'
                               || lpad(to_hex(abs(hashtext(code)) % $1::int), 12, '0'))::uuid
            """,
            fields,
        )
        # Leaders are users 0 … 3·UNITS-1 (unit = g % UNITS): leader f·3+k is in charge of field f.
        await conn.execute(
            """
            INSERT INTO tracking_leader_fields (user_id, field_id)
            SELECT ('00000000-0000-4000-9000-' || lpad(to_hex((f * 3 + k) % ($2::int * 3)), 12, '0'))::uuid,
                   ('00000000-0000-4000-a000-' || lpad(to_hex(f), 12, '0'))::uuid
            FROM generate_series(0, $1::int - 1) AS f, generate_series(0, 2) AS k
            ON CONFLICT DO NOTHING
            """,
            fields,
            UNITS,
        )
        await conn.execute("VACUUM ANALYZE tracking_tasks, tracking_leader_fields")
    finally:
        await conn.close()


async def _measure() -> None:
    from core.db import configure_engine, dispose_engine, transaction

    configure_engine(create_async_engine(f"postgresql+asyncpg://postgres@{HOST}/{DB}"))
    try:
        seconds, pushes, digests, _ = await _sweep_once(_at(WARM_UP_AT))
        print(f"warm-up sweep (Friday 16:59): {pushes:,} pushes, {digests:,} digest rows in {seconds:.2f} s")
        async with transaction() as session:  # what Friday's senders would have done
            await session.execute(text("UPDATE tracking_reminders SET status = 'sent', sent_at = now()"))
        print("\n| sweep | reminders written | of which digest | pending pushes | seconds |")
        print("|---|---:|---:|---:|---:|")
        seconds, pushes, digests, pending = await _sweep_once(_at(SWEEP_AT))
        row = f"{pushes + digests:,} | {digests:,} | {pending:,} | {seconds:.2f}"
        print(f"| Monday 08:00:30 (first of the week) | {row} |")
        seconds, pushes, digests, _ = await _sweep_once(_at(SWEEP_AT) + dt.timedelta(minutes=1))
        row = f"{pushes + digests:,} | {digests:,} | {pending:,} | {seconds:.2f}"
        print(f"| Monday 08:01:30 (next tick) | {row} |")
    finally:
        await dispose_engine()


def _backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a local PostgreSQL backend (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _count(session: Any, sql: str) -> int:
    return int((await session.execute(text(sql))).scalar_one())


async def _measure_send(send: int, *, enqueue: bool) -> None:
    """The sender draining ``send`` ledger rows as the ``tracking_send`` job does (chunks of
    ``tracking_send_chunk``, one transaction each) over one connection, whose backend's CPU is
    read from /proc; every statement sent is counted (pg_stat_statements needs a server restart
    to load, and the shared server is not ours to restart). With ``enqueue``, each commit hands
    its jobs (a fan-out and an inbox fan-out per notification) to arq as the worker does, into
    a Redis database claimed for the run (tests/support/redis_db.py) and flushed after it."""
    from sqlalchemy import event

    from core.after_commit import committed
    from core.config import get_settings
    from core.db import configure_engine, dispose_engine, transaction
    from core.jobs import set_enqueuer
    from inbox import fanout
    from notifications.on_created import set_on_created
    from tracking import sender
    from tracking.rules import get_rules

    set_on_created(fanout.schedule)  # the inbox's work, as the worker's start-up registers it
    if enqueue:
        from workers import queue

        set_enqueuer(queue.enqueue)
    engine = create_async_engine(f"postgresql+asyncpg://postgres@{HOST}/{DB}", pool_size=1, max_overflow=0)
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    configure_engine(engine)
    try:
        async with transaction() as session:
            # Back to the state right after Monday's sweep, so that runs on a kept database
            # (--keep, then --reuse) send the same rows: what a sender marked is pending again.
            await session.execute(text("DELETE FROM notifications WHERE app = 'tracking'"))
            await session.execute(
                text(
                    "UPDATE tracking_reminders SET status = 'pending', notification_id = NULL, "
                    "sent_at = NULL WHERE sent_at = :at AND rule <> 'digest'"
                ),
                {"at": _at(SWEEP_AT)},
            )
        async with transaction() as session:
            backend = await _count(session, "SELECT pg_backend_pid()")
            audited = await _count(
                session, "SELECT count(*) FROM audit_log WHERE action = 'notification.created'"
            )
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        chunk = get_settings().tracking_send_chunk
        server_cpu, client_cpu = _backend_cpu_seconds(backend), time.process_time()
        started = time.perf_counter()
        done = 0
        while done < send:
            async with transaction() as session:
                claimed = await sender.send_pending(
                    session, now=_at(SWEEP_AT), rules=get_rules(), limit=min(chunk, send - done)
                )
            if enqueue:
                await committed(session)  # as core.after_commit.committing, in the job
            if claimed == 0:
                break
            done += claimed
        seconds = time.perf_counter() - started
        server_cpu = _backend_cpu_seconds(backend) - server_cpu
        client_cpu = time.process_time() - client_cpu
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        async with transaction() as session:
            created = await _count(session, "SELECT count(*) FROM notifications")
            fanouts = await _count(session, "SELECT count(*) FROM inbox_fanouts")
            audited = (
                await _count(session, "SELECT count(*) FROM audit_log WHERE action = 'notification.created'")
                - audited
            )
        rate = done / seconds if seconds else 0.0
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(
            f"\nsender: {done:,} ledger rows → {created:,} notifications ({fanouts:,} inbox fan-outs, "
            f"{audited:,} audit rows) in {seconds:.2f} s ({rate:,.0f} rows/s); {statements:,} "
            f"statements ({statements / max(created, 1):.2f} per notification); CPU: sender "
            f"{client_cpu:.2f} s, its PostgreSQL backend {server_cpu:.2f} s "
            f"({1000 * (client_cpu + server_cpu) / max(done, 1):.2f} ms per row); load average {load}"
        )
    finally:
        if enqueue:
            from core.jobs import BULK_QUEUE, HIGH_QUEUE
            from workers import queue

            pool = await queue.get_pool()
            print(f"jobs queued: {sum([await pool.zcard(q) for q in (HIGH_QUEUE, BULK_QUEUE)]):,}")
            await pool.flushdb()  # the database claimed for this run
            await queue.close_pool()
        await dispose_engine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--send", type=int, default=30_000, help="ledger rows the sender benchmark sends")
    parser.add_argument("--enqueue", action="store_true", help="queue the jobs in a claimed Redis database")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--reuse", metavar="DATABASE", help="a kept database: only the sender runs, again")
    parser.add_argument("--fields", type=int, default=0, help="fields of responsibility, every task in one")
    args = parser.parse_args()
    from cryptography.fernet import Fernet

    for name, value in {
        "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHUONG_AUDIT_HMAC_KEY": "bench",
        "CHUONG_JWT_KEYS": '{"b": "bench-key-bench-key-bench-key-1234"}',
        "CHUONG_JWT_ACTIVE_KID": "b",
        "CHUONG_TOKEN_PEPPER": "bench",
        "CHUONG_LOG_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(name, value)
    if args.enqueue:
        from tests.support.redis_db import claim_redis_database

        os.environ["CHUONG_REDIS_URL"] = claim_redis_database()
    global DB
    if args.reuse:
        DB = args.reuse
        asyncio.run(_measure_send(args.send, enqueue=args.enqueue))
        return
    asyncio.run(_admin(f'CREATE DATABASE "{DB}"'))
    try:
        command.upgrade(alembic_config(f"postgresql+asyncpg://postgres@{HOST}/{DB}"), "head")
        started = time.perf_counter()
        asyncio.run(populate(DB, tasks=args.tasks, users=args.users))
        if args.fields:
            asyncio.run(add_fields(DB, fields=args.fields))
        print(
            f"populated {args.tasks:,} tasks, {args.users:,} users, {KPIS:,} KPI periods, "
            f"{args.fields:,} fields in {time.perf_counter() - started:.0f} s\n"
        )
        asyncio.run(_measure())
        asyncio.run(_measure_send(args.send, enqueue=args.enqueue))
    finally:
        if args.keep:
            print(f"kept database {DB}")
        else:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
