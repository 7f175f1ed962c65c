"""PostgreSQL out of disk for its WAL (issue 18, scenario 8): writes are refused cleanly while the
disk is full, the service recovers by itself once space returns, and nothing is half-written.

The WAL of a scratch cluster lives on its own small tmpfs; a filler file takes almost all of it
and a bulk writer beside the service (another application sharing the server, say) uses up the
rest. PostgreSQL then PANICs: every session is cut mid-statement and the server restarts into
crash recovery. Meanwhile the API takes pushes with Idempotency-Keys. Every answer must be a
success or a 503 (never a 500); once the filler is gone, the 503'd requests retried with the
same keys succeed; and every notification the service holds has its audit row and its inbox
fan-out record (both written in the creating transaction), each key exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.roles import Role
from tests.notifications.helpers import central_sender, notification_body
from tests.support.factories import make_account, make_unit
from tests.support.scratch_postgres import (
    ScratchCluster,
    as_os_user,
    give_to_os_user,
    pg_bindir,
    run,
    scratch_cluster,
)
from tests.support.scratch_service_db import ServiceDatabase, service_database

WAL_FS_MB = 64
REQUESTS = 40


@pytest.fixture(scope="module")
def wal_fs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the WAL needs root (CI and the dev machines run as root)")
    path = Path(tempfile.mkdtemp(prefix="chuong-wal-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={WAL_FS_MB}m", "tmpfs", str(path)], check=True)  # noqa: S603, S607
    give_to_os_user(path)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)  # noqa: S603, S607
        with contextlib.suppress(OSError):
            path.rmdir()


@pytest.fixture(scope="module")
def cluster(wal_fs: Path) -> Iterator[ScratchCluster]:
    settings = ["max_wal_size = 32MB", "min_wal_size = 32MB", "restart_after_crash = on"]
    with scratch_cluster(settings=settings, initdb_args=["--waldir", str(wal_fs / "wal")]) as scratch:
        yield scratch


@pytest.fixture
async def service_db(cluster: ScratchCluster) -> AsyncIterator[ServiceDatabase]:
    async with service_database(cluster) as db:
        yield db


@pytest.fixture
def database_url(service_db: ServiceDatabase) -> str:
    return service_db.app_url


@pytest.fixture
def owner_engine(service_db: ServiceDatabase) -> AsyncEngine:
    return service_db.owner


def fill(wal_fs: Path, *, leave_bytes: int) -> Path:
    filler = wal_fs / "filler"
    stat = os.statvfs(wal_fs)
    free = stat.f_bavail * stat.f_frsize
    subprocess.run(["fallocate", "-l", str(max(free - leave_bytes, 0)), str(filler)], check=True)  # noqa: S603, S607
    return filler


async def bulk_writer(owner: AsyncEngine, stop: asyncio.Event) -> int:
    """Another writer on the server: WAL-heavy inserts until the disk gives out."""
    failures = 0
    with contextlib.suppress(DBAPIError, OSError):
        async with owner.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS ballast (x text)"))
    while not stop.is_set():
        try:
            async with owner.begin() as conn:
                await conn.execute(
                    text("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, 2000)")
                )
        except (DBAPIError, OSError):
            failures += 1
            await asyncio.sleep(0.2)
    return failures


def server_running(cluster: ScratchCluster) -> bool:
    done = subprocess.run(  # noqa: S603
        as_os_user([str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "status"]),
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def post(client: httpx.AsyncClient, headers: dict[str, str], body: dict, key: str) -> int:
    response = await client.post("/v1/notifications", json=body, headers={**headers, "Idempotency-Key": key})
    assert response.status_code in (200, 202, 503), response.text
    if response.status_code == 503:
        assert response.json()["error"]["code"] in ("busy", "unavailable")
        assert "retry-after" in response.headers
    return response.status_code


@pytest.mark.slow
async def test_wal_disk_full_refuses_writes_cleanly_and_recovers(
    client, owner_engine, cluster, wal_fs, redis
):
    sender = await central_sender(client)
    reader = await make_account(role=Role.MEMBER, unit=await make_unit())
    body = notification_body(app="portal", kind="editorial.notice", audience={"users": [str(reader.id)]})
    assert await post(client, sender, body, "before-0") == 202

    filler = fill(wal_fs, leave_bytes=2 * 1024 * 1024)
    stop = asyncio.Event()
    writer = asyncio.create_task(bulk_writer(owner_engine, stop))
    answers: dict[str, int] = {}
    for i in range(REQUESTS):
        key = f"during-{i}"
        answers[key] = await post(client, sender, body, key)
        await asyncio.sleep(0.05)
    stop.set()
    writer_failures = await writer
    refused = [key for key, status in answers.items() if status == 503]
    assert writer_failures > 0, "the WAL disk never filled up: the fault was not produced"
    assert refused, f"no request met the full disk: {answers}"

    filler.unlink()
    started = time.monotonic()
    if not server_running(cluster):  # crash recovery could not even start without space
        log = str(cluster.directory / "postgres.log")
        run([str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "-l", log, "-w", "start"])
    for key in refused:  # the clients retry with the same key, as the 503 tells them to
        for _ in range(60):
            status = await post(client, sender, body, key)
            if status != 503:
                break
            await asyncio.sleep(0.5)
        assert status in (200, 202), f"{key} still refused after space returned"
    recovered = time.monotonic() - started
    print(f"\nWAL full: {len(refused)} of {REQUESTS} refused with 503, all retried after {recovered:.1f} s")

    async with owner_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """SELECT n.idempotency_key,
                              (SELECT count(*) FROM audit_log a WHERE a.object_id = n.id::text) AS audited,
                              (SELECT count(*) FROM inbox_fanouts f WHERE f.notification_id = n.id) AS inbox
                         FROM notifications n"""
                )
            )
        ).all()
    keys = [row.idempotency_key for row in rows]
    assert sorted(keys) == sorted(["before-0", *answers])  # each key exactly once, none lost
    half_written = [row for row in rows if row.audited == 0 or row.inbox != 1]
    assert half_written == []
