"""Nothing queued is lost: a worker killed with SIGKILL mid fan-out, or Redis flushed, and
every delivery still ends sent / invalid / failed, with duplicates bounded by one batch."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import IO

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from emulator.app_settings import as_env
from notifications import delivery
from tests.notifications.helpers import broadcast, central_sender

DEVICES = 10_000
BATCH = 500
LOG_TAIL_BYTES = 8_000
_WORKER_LOGS: dict[int, IO[bytes]] = {}


async def insert_devices(owner_engine, count: int) -> None:
    """Bulk-create live portal devices: 70 % FCM, 30 % APNs."""
    async with owner_engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO devices (id, app, platform, provider, apns_environment, token, locale)
                SELECT gen_random_uuid(), 'portal',
                       CASE WHEN i % 10 < 7 THEN 'android' ELSE 'ios' END,
                       CASE WHEN i % 10 < 7 THEN 'fcm' ELSE 'apns' END,
                       CASE WHEN i % 10 < 7 THEN NULL ELSE 'production' END,
                       CASE WHEN i % 10 < 7 THEN 'ok-fcm-' || i ELSE lpad(to_hex(i), 64, '0') END,
                       (ARRAY['vi','en','zh','fr','es','ru'])[1 + i % 6]
                FROM generate_series(1, :count) AS i
                """
            ),
            {"count": count},
        )


def start_worker(database_url: str, emulator, *options: str) -> subprocess.Popen[bytes]:
    """A real ``chuong worker --queue high`` (with ``options``, e.g. ``--urgent-only``)."""
    env = {
        **os.environ,
        "CHUONG_DATABASE_URL": database_url,
        **as_env(emulator.app_settings()),
        # Short lease and reconcile period so that recovery is seen in seconds, not minutes.
        "CHUONG_DELIVERY_LEASE_SECONDS": "15",
        "CHUONG_RECONCILE_GRACE_SECONDS": "1",
        "CHUONG_RECONCILE_EVERY_SECONDS": "2",
        "CHUONG_LOG_LEVEL": "WARNING",
    }
    # Its log goes to a file, not a pipe: nobody reads a pipe until the worker stops, and a
    # worker that filled one would block on its next log line. ``stop`` prints the log's tail,
    # which pytest shows when the test fails.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
    process = subprocess.Popen(  # noqa: S603 - our own command, the options a test passes
        [sys.executable, "-m", "cli", "worker", "--queue", "high", *options],
        env=env,
        stdout=log,  # the service logs to stdout (core/logging.py)
        stderr=subprocess.STDOUT,
    )
    _WORKER_LOGS[process.pid] = log
    return process


async def counts(owner_engine, notification_id: str) -> dict[str, int]:
    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT status, count(*) FROM deliveries WHERE notification_id = :id GROUP BY status"),
                {"id": notification_id},
            )
        ).all()
        status = (
            await conn.execute(
                text("SELECT status FROM notifications WHERE id = :id"), {"id": notification_id}
            )
        ).scalar_one()
    return {"notification": status, **{row.status: row.count for row in rows}}  # type: ignore[dict-item]


async def wait_for(predicate, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def worker_log(process: subprocess.Popen[bytes]) -> str:
    """What a worker started by ``start_worker`` has logged so far."""
    log = _WORKER_LOGS[process.pid]
    log.seek(0)
    return log.read().decode(errors="replace")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s. It waits in this thread: the test's in-process emulator
    answers nobody meanwhile, so a worker stopped mid-send would see its requests time out (stop
    it with ``await asyncio.to_thread(process.wait, …)`` after the signal, as
    test_worker_sigterm.py does)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = _WORKER_LOGS.pop(process.pid, None)
    if log is not None:
        with log:
            log.seek(0)
            tail = log.read()[-LOG_TAIL_BYTES:].decode(errors="replace")
        if tail:
            print(f"\n--- worker {process.pid} log (last {LOG_TAIL_BYTES} bytes) ---\n{tail}")


def assert_all_final_and_duplicates_bounded(emulator, final: dict[str, int]) -> None:
    assert final["notification"] == "completed", final
    assert final.get("sent", 0) + final.get("invalid", 0) + final.get("failed", 0) == DEVICES, final
    assert final.get("sent", 0) == DEVICES, final
    per_token = Counter(record.token for record in emulator.log.find(limit=DEVICES * 3))
    assert len(per_token) == DEVICES  # every device got its push…
    duplicates = sum(n - 1 for n in per_token.values())
    assert duplicates <= PER_WORKER_BOUND  # …and at most what one worker can hold went out twice


# What a worker that dies (or loses its database) can have sent but not recorded: the window of
# chunks sent and not yet written of each of its two batches under way, 500 rows by default
# (notifications/delivery.py send_batch; docs/delivery.md "Guarantees"); allowed here, as before
# the two windows, one batch and three chunks of another: 875 rows.
PER_WORKER_BOUND = BATCH + (delivery.CHUNKS_IN_FLIGHT + 1) * (BATCH // delivery.SEND_CHUNKS)


@pytest.mark.slow
async def test_worker_killed_mid_fan_out_loses_nothing(
    client, database_url, owner_engine, emulated_settings, emulator
):
    await insert_devices(owner_engine, DEVICES)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)

    first = start_worker(database_url, emulator)
    try:

        async def some_sent() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= 1500

        await wait_for(some_sent, timeout=120, what="the first worker to send some pushes")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop(first)
    midway = await counts(owner_engine, notification_id)
    assert midway["notification"] != "completed", midway

    second = start_worker(database_url, emulator)
    try:

        async def done() -> bool:
            return (await counts(owner_engine, notification_id))["notification"] == "completed"

        await wait_for(done, timeout=240, what="the second worker to finish the notification")
    finally:
        stop(second)
    assert_all_final_and_duplicates_bounded(emulator, await counts(owner_engine, notification_id))


@pytest.mark.slow
async def test_redis_flushed_mid_fan_out_is_recovered_by_the_reconciler(
    client, database_url, owner_engine, emulated_settings, emulator
):
    await insert_devices(owner_engine, DEVICES)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    worker = start_worker(database_url, emulator)
    try:

        async def some_sent() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= 1500

        await wait_for(some_sent, timeout=120, what="some pushes to go out")
        redis = Redis.from_url(os.environ["CHUONG_REDIS_URL"])
        await redis.flushdb()  # every queued job and arq's bookkeeping are gone
        await redis.aclose()

        async def done() -> bool:
            return (await counts(owner_engine, notification_id))["notification"] == "completed"

        await wait_for(done, timeout=240, what="the reconciler to finish the notification")
    finally:
        stop(worker)
    assert_all_final_and_duplicates_bounded(emulator, await counts(owner_engine, notification_id))
