"""Delivery benchmark: one push to N devices through the whole pipeline, against the emulator.

    .venv/bin/python -m bench.delivery [--devices 100000] [--workers 1] [--latency-ms 40]

Registers N devices (70 % FCM / 30 % APNs, six locales) in a fresh `chuong_bench` database, runs
real `chuong worker --queue high` processes, and sends a high-priority broadcast (audience "all")
per phase: "fcm" and "apns" with only that provider's devices live (so each worker-CPU figure
belongs to one provider), "all" with every device live.

Right before each phase, its raw baseline (bench/baseline.py): the same provider classes, paced
and with the same in-flight limits, in as many OS processes as there are workers, sending the
same kind of devices (the mix too, measured) to the same emulator, no database, no queue.
`--latency-ms` makes the emulator answer every provider request that much later (both sides).
Prints per phase throughput, the pipeline ÷ raw ratio, CPU per delivery (workers, raw
processes, PostgreSQL, emulator), the load average and peak worker RSS. `--profile DIR` samples
the workers with py-spy (figures from a profiled run are not for the record).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import profiling, support
from bench.baseline import BODY, TITLE, Figures, raw_baseline
from bench.delivery_report import report

# Two send batches per worker: enough requests at once to open every provider connection a
# worker may hold (250 FCM connections; a batch has two chunks of 125 at the provider).
WARM_DEVICES = 2_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="`chuong worker` processes")
    parser.add_argument("--transport", choices=["http1", "firebase_admin"], default="http1")
    parser.add_argument("--fcm-share", type=float, default=0.7)
    parser.add_argument("--raw-messages", type=int, default=30_000, help="per phase, for the baseline")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="emulator-side delay of every FCM/APNs answer"
    )
    parser.add_argument("--phases", default="fcm,apns,all", help="comma-separated: fcm, apns, all (both)")
    parser.add_argument("--database", default="chuong_bench")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="host:port, trust authentication")
    parser.add_argument("--pg-superuser", default="postgres")
    parser.add_argument("--redis-url", default=None, help="default: a leased logical database")
    parser.add_argument("--phase-timeout", type=float, default=3600, help="seconds")
    parser.add_argument("--profile", type=Path, default=None, help="directory for py-spy profiles")
    parser.add_argument("--worker-env", action="append", default=[], help="NAME=VALUE for the workers")
    return parser.parse_args()


def configure_environment(args: argparse.Namespace, host: str, port: int) -> None:
    """Settings come from the environment; set them before any project module reads them."""
    from cryptography.fernet import Fernet

    if args.redis_url is None:
        from tests.support.redis_db import claim_redis_database

        args.redis_url = claim_redis_database()
    os.environ.update(
        {
            "CHUONG_ENVIRONMENT": "bench",
            "CHUONG_DATABASE_URL": f"postgresql+asyncpg://{support.APP_ROLE}@{host}:{port}/{args.database}",
            "CHUONG_REDIS_URL": args.redis_url,
            "CHUONG_FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "CHUONG_AUDIT_HMAC_KEY": secrets.token_urlsafe(32),
            "CHUONG_JWT_KEYS": json.dumps({"bench": secrets.token_urlsafe(32)}),
            "CHUONG_JWT_ACTIVE_KID": "bench",
            "CHUONG_TOKEN_PEPPER": secrets.token_urlsafe(32),
            "CHUONG_FCM_TRANSPORT": args.transport,
            "CHUONG_LOG_LEVEL": "WARNING",
            "CHUONG_LOG_JSON": "false",
        }
    )
    # The benchmark commits notifications itself; their jobs go to arq after the commit, as the
    # API app factory and the workers arrange at start-up (core/jobs.py).
    from core.jobs import set_enqueuer
    from inbox import fanout
    from notifications.on_created import set_on_created
    from workers.queue import enqueue

    set_enqueuer(enqueue)
    set_on_created(fanout.schedule)  # and their inbox work, as the API and workers do


async def sign_in_as_system_admin() -> Any:
    from auth.principal import Principal
    from auth.roles import Role, permissions_of
    from auth.units import create_root_unit
    from auth.users import bootstrap_system_admin
    from core.db import transaction

    async with transaction() as session:
        unit = await create_root_unit(session, code="BENCH", name="Benchmark", kind="central")
        user = await bootstrap_system_admin(
            session,
            unit=unit,
            username="bench",
            full_name="Benchmark",
            password=secrets.token_urlsafe(24),
            email=None,
        )
    permissions = permissions_of(Role.SYSTEM_ADMIN)
    return Principal(permissions=permissions, unit_id=unit.id, unit_path=unit.path, user=user, actor=user)


async def send_notification(principal: Any, audience: dict[str, Any]) -> str:
    """Through the service layer, as an approved breaking-news release does: a broadcast is
    released only with a second approver (notifications/policy.py), which the benchmark stands in
    for; the fan-out job is queued after commit."""
    import uuid

    from core.after_commit import committing
    from notifications import service
    from notifications.policy import ApprovedRelease
    from notifications.schemas import NotificationCreate

    body = NotificationCreate.model_validate(
        {
            "app": "portal",
            "kind": "breaking_news",
            "priority": "high",
            "title": TITLE,
            "body": BODY,
            "data": {"article_id": "a-1"},
            "deep_link": "chuong-portal://article/a-1",
            "collapse_key": "a-1",
            "audience": audience,
        }
    )
    async with committing() as session:
        notification = await service.create_approved(
            session,
            body=body,
            created_by_id=principal.user_id,
            unit_id=principal.unit_id,
            approved=ApprovedRelease(workflow="bench", object_id=uuid.uuid4(), approved_by=principal.user_id),
        )
    return str(notification.id)


async def pipeline_phase(
    name: str, conn: asyncpg.Connection, principal: Any, workers: list[int], emulator: int, args: Any
) -> Figures:
    async with profiling.watching(args.profile, name, workers, args.pg, args.pg_superuser, args.database):
        before = sum(support.cpu_seconds(pid) for pid in workers)
        postgres, emulator_before = support.postgres_cpu_seconds(), support.cpu_seconds(emulator)
        started, load = time.perf_counter(), os.getloadavg()[0]
        notification_id = await send_notification(principal, {"all": True})
        final = await support.wait_until_completed(conn, notification_id, timeout_seconds=args.phase_timeout)
        seconds = time.perf_counter() - started
        figures = Figures(
            f"pipeline {name}",
            final["targeted"],
            seconds,
            sum(support.cpu_seconds(pid) for pid in workers) - before,
            postgres_cpu=support.postgres_cpu_seconds() - postgres,
            emulator_cpu=support.cpu_seconds(emulator) - emulator_before,
            load=(load, os.getloadavg()[0]),
        )
    if final["sent"] != final["targeted"]:
        raise RuntimeError(f"{name}: not everything was sent: {final}")
    return figures


async def wait_for_idle(workers: list[int]) -> None:
    """Started workers spend a second or two importing; measure only once they idle."""
    previous = [support.cpu_seconds(pid) for pid in workers]
    for _ in range(120):
        await asyncio.sleep(0.5)
        current = [support.cpu_seconds(pid) for pid in workers]
        if all(now - then < 0.05 for now, then in zip(current, previous, strict=True)):
            return
        previous = current


async def warm_up(conn: asyncpg.Connection, principal: Any, workers: list[int]) -> None:
    """Right before a measured phase, as the raw processes warm up right before theirs: a push to
    the phase's first WARM_DEVICES live devices, so that the workers' provider connections are
    open and their TLS handshakes done. Without it the phase paid them (the warm-up push at the
    start opened about 100 FCM connections of the 250 a worker may hold, and those idle longer
    than aiohttp's 15 s keep-alive while the raw baseline runs): 4-8 % of the worker's samples in
    an FCM phase of 14,000-28,000 deliveries, none of it on the raw side (docs/benchmarks.md)."""
    rows = await conn.fetch(
        "SELECT id FROM devices WHERE invalidated_at IS NULL ORDER BY id LIMIT $1", WARM_DEVICES
    )
    warm_id = await send_notification(principal, {"devices": [str(row["id"]) for row in rows]})
    await support.wait_until_completed(conn, warm_id, timeout_seconds=120)
    await wait_for_idle(workers)


async def run(args: argparse.Namespace, emulator: support.EmulatorProcess) -> None:
    conn = await support.fresh_database(
        pg=args.pg, superuser=args.pg_superuser, name=args.database, redis_url=args.redis_url
    )
    workers: list[Any] = []
    try:
        started = time.perf_counter()
        counts = await support.insert_devices(conn, devices=args.devices, fcm_share=args.fcm_share)
        print(f"registered {counts} in {time.perf_counter() - started:.1f} s", flush=True)
        await support.set_provider_latency(str(emulator.addresses["control_url"]), args.latency_ms)
        principal = await sign_in_as_system_admin()
        extra = dict(item.split("=", 1) for item in args.worker_env)
        workers = support.start_workers(args.workers, {**os.environ, **extra})
        pids = [worker.pid for worker in workers]
        # A small warm-up push: the workers are up, connected and past their imports.
        warm = await conn.fetch(
            "(SELECT id FROM devices WHERE provider = 'fcm' LIMIT 100)"
            " UNION ALL (SELECT id FROM devices WHERE provider = 'apns' LIMIT 100)"
        )
        warm_id = await send_notification(principal, {"devices": [str(row["id"]) for row in warm]})
        await support.wait_until_completed(conn, warm_id, timeout_seconds=120)
        raw: dict[str, Figures] = {}
        pipeline: dict[str, Figures] = {}
        for name in [phase for phase in args.phases.split(",") if phase]:
            live = sum(counts.values()) if name == "all" else counts.get(name, 0)
            if not live:
                continue
            await support.keep_live_only(conn, None if name == "all" else name)
            await wait_for_idle(pids)
            # Right before the pipeline's phase, so both see the same machine (it is shared).
            raw[name] = await raw_baseline(
                name,
                min(args.raw_messages, live),
                processes=args.workers,
                emulator_pid=emulator.pid,
                fcm_share=args.fcm_share,
            )
            print(f"raw {name}: {raw[name].messages:,} in {raw[name].seconds:.1f} s", flush=True)
            await warm_up(conn, principal, pids)
            pipeline[name] = await pipeline_phase(name, conn, principal, pids, emulator.pid, args)
            print(f"{name}: {pipeline[name].messages:,} in {pipeline[name].seconds:.1f} s", flush=True)
        rss = [support.peak_rss_mb(pid) for pid in pids]
    finally:
        support.stop(workers)
        await conn.close()
    report(args, raw, pipeline, rss)
    if args.profile:
        for path in sorted(args.profile.glob("*.txt")):
            print("\n" + profiling.summarize(path))


def main() -> None:
    args = parse_args()
    host, port = args.pg.split(":")
    configure_environment(args, host, int(port))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    emulator = support.EmulatorProcess.start(Path(tempfile.mkdtemp(prefix="chuong-bench-")) / "ca.pem")
    os.environ.update(emulator.env())
    try:
        asyncio.run(run(args, emulator))
    finally:
        support.stop([emulator.process])


if __name__ == "__main__":
    main()
