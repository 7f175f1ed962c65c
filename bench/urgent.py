"""Urgent pushes during a big broadcast: approve → first provider request, sweep → first push.

    .venv/bin/python -m bench.urgent --devices 200000 --workers 2 --latency-ms 40 --runs 20

A fresh database (`chuong_bench_urgent`) with N live portal devices (70 % FCM / 30 % APNs), 20
more that follow the section `khan-cap`, and one tracking-app device of a user who is
responsible for a task. `--workers` `chuong worker --queue high` processes, `--urgent-workers`
`chuong worker --queue high --urgent-only` and one `chuong worker --queue bulk` (as `make run`
starts them; `--nice-ordinary N` starts the ordinary ones under `nice -n N`), an emulator process
that records the messages and answers after `--latency-ms`.

First a breaking-news item to every reader is approved (the broadcast). Once it is sending, every
`--every` seconds:
* a breaking-news item to the section is approved (the news workflow called in this process); the
  clock starts just before the approval transaction and stops at the emulator's earliest
  `received_at` of that item on the section's devices;
* a pending reminder row is written to the tracking ledger and a `tracking_sweep` job queued (as
  the minute's cron does): the clock starts at the queueing, stops at the emulator's first
  message to the tracking device after it.
Prints p50 / p95 / max of both, and how far the broadcast was when each was measured: only
samples taken while it was still sending count; then the CPU each kind of process used.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import support
from bench.delivery import configure_environment, sign_in_as_system_admin, wait_for_idle
from bench.news import approve, make_author, percentile

SECTION = "khan-cap"
SECTION_DEVICES = 20
TRACKING_TOKEN = "benchtracking0000:APA91b" + "x" * 140


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.urgent", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200_000, help="the broadcast's audience")
    parser.add_argument("--workers", type=int, default=2, help="`chuong worker --queue high` processes")
    parser.add_argument(
        "--urgent-workers", type=int, default=1, help="`chuong worker --queue high --urgent-only` processes"
    )
    parser.add_argument(
        "--nice-ordinary", type=int, default=0, help="start the ordinary workers under `nice -n N`"
    )
    parser.add_argument("--latency-ms", type=float, default=40.0, help="the emulator's answer delay")
    parser.add_argument("--runs", type=int, default=20, help="urgent items (and reminders) timed")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two urgent items")
    parser.add_argument("--warm-up", type=float, default=5.0, help="seconds of broadcast before the first")
    parser.add_argument("--reminder-priority", choices=["normal", "high", "emergency"], default="normal")
    parser.add_argument("--fcm-share", type=float, default=0.7)
    parser.add_argument("--transport", choices=["http1", "firebase_admin"], default="http1")
    parser.add_argument("--database", default="chuong_bench_urgent")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="host:port, trust authentication")
    parser.add_argument("--pg-superuser", default="postgres")
    parser.add_argument("--redis-url", default=None, help="default: a leased logical database")
    return parser.parse_args()


def section_token(index: int) -> str:
    return f"benchsection{index:06d}:APA91b" + "x" * 140


async def add_urgent_audiences(conn: asyncpg.Connection, unit_id: uuid.UUID) -> uuid.UUID:
    """The section and its FCM devices, and the tracking user, device and task. Returns the task."""
    await conn.execute(
        "INSERT INTO news_sections (id, code, names) VALUES (gen_random_uuid(), $1, $2::jsonb)",
        SECTION,
        '{"vi": "Khẩn cấp", "en": "Urgent"}',
    )
    await conn.executemany(
        "INSERT INTO devices (id, app, platform, provider, token, locale, topics) "
        "VALUES (gen_random_uuid(), 'portal', 'android', 'fcm', $1, 'vi', $2)",
        [(section_token(i), [SECTION]) for i in range(SECTION_DEVICES)],
    )
    from auth.models import User
    from core.db import transaction
    from tracking.models import Task

    now = dt.datetime.now(dt.UTC)
    async with transaction() as session:
        user = User(
            id=uuid.uuid4(),
            username="trackingbench",
            full_name="Cán bộ",
            unit_id=unit_id,
            role="officer",
            password_hash="!",  # noqa: S106 (never signs in)
            is_active=True,
        )
        session.add(user)
        await session.flush()
        task = Task(
            code="BENCH-1",
            name="Nhiệm vụ",
            lead_unit_id=unit_id,
            responsible_user_ids=[user.id],
            deadline=now + dt.timedelta(days=300),
            deadline_date=(now + dt.timedelta(days=300)).date(),
            priority=3,
            result_status="in_progress",
            received_at=now,
            confirmed_at=now,
            version=1,
        )
        session.add(task)
        await session.flush()
        task_id, user_id = task.id, user.id
    await conn.execute(
        "INSERT INTO devices (id, app, platform, provider, token, locale, user_id) "
        "VALUES (gen_random_uuid(), 'tracking', 'android', 'fcm', $1, 'vi', $2)",
        TRACKING_TOKEN,
        user_id,
    )
    await conn.execute("VACUUM ANALYZE devices")
    return task_id


async def submitted(author: Any, index: int, audience: dict[str, Any]) -> uuid.UUID:
    from core.after_commit import committing
    from news import service, workflow
    from news.schemas import NewsDraft

    body = NewsDraft.model_validate(
        {
            "article_id": f"urgent-{index}",
            "deep_link": f"chuong-portal://article/urgent-{index}",
            "title": {"vi": "Tin khẩn", "en": "Breaking news"},
            "body": {"vi": "Nội dung", "en": "Story"},
            "audience": audience,
        }
    )
    async with committing() as session:
        item = await service.create_draft(session, principal=author, body=body)
        await workflow.submit(session, principal=author, item_id=item.id, reason=None)
        return item.id


async def records_after(http: aiohttp.ClientSession, control: str, token: str, since: float) -> list[Any]:
    async with http.get(f"{control}/messages", params={"token": token, "limit": "20"}) as response:
        messages = (await response.json())["messages"]
    return [m for m in messages if m["received_at"] >= since]


async def first_of(
    http: aiohttp.ClientSession, conn: asyncpg.Connection, control: str, notification_id: str, since: float
) -> float:
    """The earliest emulator record of this notification on the section's devices. Waits for it in
    PostgreSQL: a look-up by token scans the emulator's whole record (300,000 messages), and
    polling it would take the emulator's CPU from the broadcast."""
    await support.wait_until_completed(conn, notification_id, timeout_seconds=600)
    times = []
    for index in range(SECTION_DEVICES):
        for message in await records_after(http, control, section_token(index), since):
            data = (message.get("payload") or {}).get("message", {}).get("data", {})
            if data.get("notification_id") == notification_id:
                times.append(message["received_at"])
    if len(times) != SECTION_DEVICES:
        raise RuntimeError(f"{notification_id} reached {len(times)} of the section's devices")
    return float(min(times))


async def reminder_sweep(task_id: uuid.UUID, index: int, priority: str) -> float:
    """A due reminder in the ledger, then the sweep job queued as the cron does. Returns when it
    was queued."""
    from arq.constants import result_key_prefix

    from core.db import transaction
    from core.jobs import HIGH_QUEUE, DeferredJob, JobName
    from tracking.models import Reminder, Task
    from workers.queue import enqueue, get_pool

    async with transaction() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        session.add(
            Reminder(
                subject_id=task_id,
                rule="deadline",
                occurrence=f"d3:bench-{index}",
                user_id=task.responsible_user_ids[0],
                priority=priority,
                channel="push",
                due_at=dt.datetime.now(dt.UTC),
            )
        )
    # The sweep queues its senders as `tracking-send:<minute>:<n>`, and arq keeps a finished job's
    # result for 60 s: a second sweep in the same minute would find its sender already done and
    # leave the row to the next minute's sweep. The cron sweeps once a minute; this one sweeps
    # every few seconds, so it clears those results first.
    pool = await get_pool()
    minute = int(time.time() // 60)
    await pool.delete(
        *(f"{result_key_prefix}tracking-send:{m}:{n}" for m in (minute, minute + 1) for n in range(4))
    )
    queued = time.time()
    # Under the id arq gives the minute's cron (`cron:<function>:<ms>`), so that the workers treat
    # it as they treat the cron (an urgent worker takes it, workers/roles.py).
    job_id = f"cron:{JobName.TRACKING_SWEEP.value}:{int(queued * 1000)}"
    await enqueue([DeferredJob(JobName.TRACKING_SWEEP, (), job_id=job_id, queue=HIGH_QUEUE)])
    return queued


async def first_reminder(
    http: aiohttp.ClientSession, conn: asyncpg.Connection, control: str, index: int, since: float
) -> float:
    """When the emulator got the reminder, once its notification completed (polled in PostgreSQL,
    as above)."""
    deadline = time.time() + 600.0
    while time.time() < deadline:
        status = await conn.fetchval(
            "SELECT n.status FROM tracking_reminders r JOIN notifications n ON n.id = r.notification_id "
            "WHERE r.occurrence = $1",
            f"d3:bench-{index}",
        )
        if status == "completed":
            found = await records_after(http, control, TRACKING_TOKEN, since)
            return float(min(m["received_at"] for m in found))
        await asyncio.sleep(0.05)
    raise TimeoutError("the reminder was not pushed")


async def broadcast_state(conn: asyncpg.Connection, notification_id: str) -> tuple[str, int]:
    row = await conn.fetchrow("SELECT status, sent FROM notifications WHERE id = $1::uuid", notification_id)
    assert row is not None
    return str(row["status"]), int(row["sent"])


def summary(name: str, values: list[float]) -> None:
    if not values:
        print(f"{name}: no sample taken while the broadcast was sending")
        return
    print(
        f"{name} over {len(values)}: p50 {statistics.median(values):.0f} ms  "
        f"p95 {percentile(values, 0.95):.0f} ms  min {min(values):.0f} ms  max {max(values):.0f} ms"
    )


def cpu_of(processes: list[Any]) -> float:
    return sum(support.cpu_seconds(process.pid) for process in processes)


def backends_cpu(database: str) -> dict[int, float]:
    """CPU so far of each PostgreSQL backend connected to ``database`` (its title names it): the
    machine's other databases, and backends that ended, left out."""
    seen: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres: ") and f" {database} " in title:
                seen[int(entry.name)] = support.cpu_seconds(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return seen


def backends_cpu_since(database: str, before: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in backends_cpu(database).items())


async def measure(
    args: argparse.Namespace,
    conn: asyncpg.Connection,
    control: str,
    ordinary: list[Any],
    urgent: list[Any],
    emulator: list[Any],
) -> None:
    approver = await sign_in_as_system_admin()
    author = await make_author(approver)
    task_id = await add_urgent_audiences(conn, approver.unit_id)
    news_ms: list[float] = []
    approval_ms: list[float] = []  # the approval's transaction, commit and enqueue, in this process
    reminder_ms: list[float] = []
    async with aiohttp.ClientSession() as http:
        # Warm-up while idle: connections, provider clients, query plans.
        await approve(approver, await submitted(author, -1, {"sections": [SECTION]}))
        await asyncio.sleep(1.0)
        cpu_before = (cpu_of(ordinary), cpu_of(urgent), cpu_of(emulator))
        backends_before = backends_cpu(args.database)
        broadcast_started = time.time()
        broadcast = await approve(approver, await submitted(author, 0, {"all_readers": True}))
        await asyncio.sleep(args.warm_up)
        for index in range(1, args.runs + 1):
            tick = time.time()
            item = await submitted(author, index, {"sections": [SECTION]})
            started = time.time()
            notification_id = await approve(approver, item)
            approved = time.time()
            first = await first_of(http, conn, control, notification_id, started)
            queued = await reminder_sweep(task_id, index, args.reminder_priority)
            pushed = await first_reminder(http, conn, control, index, queued)
            status, sent = await broadcast_state(conn, broadcast)
            during = status == "sending"
            print(
                f"  {index:2d}: approve → first request {(first - started) * 1000:6.0f} ms "
                f"(approval {(approved - started) * 1000:4.0f} ms), "
                f"sweep → push {(pushed - queued) * 1000:6.0f} ms; broadcast {status} {sent:,} sent"
                f"{'' if during else ' (not counted)'}",
                flush=True,
            )
            if during:
                news_ms.append((first - started) * 1000)
                approval_ms.append((approved - started) * 1000)
                reminder_ms.append((pushed - queued) * 1000)
            if not during:
                break  # the broadcast is over: nothing more to measure
            await asyncio.sleep(max(0.0, args.every - (time.time() - tick)))
        final = await support.wait_until_completed(conn, broadcast, timeout_seconds=3600)
        took = time.time() - broadcast_started
        cpu_after = (cpu_of(ordinary), cpu_of(urgent), cpu_of(emulator))
        cpu_ordinary, cpu_urgent, cpu_emulator = (
            after - before for after, before in zip(cpu_after, cpu_before, strict=True)
        )
        cpu_postgres = backends_cpu_since(args.database, backends_before)
    print(
        f"broadcast: {final['sent']:,} sent of {final['targeted']:,} in {took:.1f} s "
        f"({final['sent'] / took:,.0f}/s, urgent items included)"
    )
    sent = max(1, int(final["sent"]))
    print(
        f"CPU during the broadcast: ordinary workers {cpu_ordinary:.1f} s "
        f"({cpu_ordinary / sent * 1000:.3f} ms per delivery), urgent workers {cpu_urgent:.1f} s "
        f"({cpu_urgent / max(1, len(news_ms)) * 1000:.0f} ms per item and reminder), "
        f"emulator {cpu_emulator:.1f} s, PostgreSQL backends of the database {cpu_postgres:.1f} s"
    )
    summary(f"approve → first provider request during the broadcast ({SECTION_DEVICES} devices)", news_ms)
    summary("of which the approval (transaction, commit, enqueue; in the bench's process)", approval_ms)
    summary(f"sweep queued → reminder pushed ({args.reminder_priority})", reminder_ms)
    print(
        f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.workers} ordinary high "
        f"workers, {args.urgent_workers} urgent, ordinary nice {args.nice_ordinary}"
    )


def start_workers(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """The ordinary workers (`--workers` on the high queue and one on the bulk queue, under
    `nice -n --nice-ordinary` if given) and the urgent ones."""
    nice = ["nice", "-n", str(args.nice_ordinary)] if args.nice_ordinary else []
    worker = [sys.executable, "-m", "cli", "worker"]

    def start(argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, cwd=support.ROOT, env=dict(os.environ))  # noqa: S603 - our own CLI

    ordinary = [start([*nice, *worker, "--queue", queue]) for queue in ["high"] * args.workers + ["bulk"]]
    urgent = [start([*worker, "--queue", "high", "--urgent-only"]) for _ in range(args.urgent_workers)]
    return ordinary, urgent


async def run(args: argparse.Namespace, emulator: support.EmulatorProcess) -> None:
    conn = await support.fresh_database(
        pg=args.pg, superuser=args.pg_superuser, name=args.database, redis_url=args.redis_url
    )
    workers: list[Any] = []
    try:
        counts = await support.insert_devices(conn, devices=args.devices, fcm_share=args.fcm_share)
        print(f"registered {counts}", flush=True)
        control = str(emulator.addresses["control_url"])
        await support.set_provider_latency(control, args.latency_ms)
        ordinary, urgent = start_workers(args)
        workers = ordinary + urgent
        await wait_for_idle([worker.pid for worker in workers])
        await measure(args, conn, control, ordinary, urgent, [emulator.process])
    finally:
        support.stop(workers)
        await conn.close()


def main() -> None:
    args = parse_args()
    host, port = args.pg.split(":")
    configure_environment(args, host, int(port))
    ca_path = Path(tempfile.mkdtemp(prefix="chuong-bench-")) / "ca.pem"
    emulator = support.EmulatorProcess.start(ca_path, record=True, max_payloads=20_000)
    os.environ.update(emulator.env())
    try:
        asyncio.run(run(args, emulator))
    finally:
        support.stop([emulator.process])


if __name__ == "__main__":
    main()
