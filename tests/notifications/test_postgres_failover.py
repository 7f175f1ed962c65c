"""PostgreSQL failing over to a streaming standby in the middle of a broadcast (issue 18,
failover): the service's connection string names both servers with
``target_session_attrs=read-write``; the primary dies (``-m immediate``), the standby is promoted,
and the API and a real worker carry on against it with nothing configured again. Nothing is lost,
duplicates stay within the batch in flight, no batch is left open, counters equal the rows.

The standby is synchronous (``synchronous_standby_names``), as docs/operations.md recommends for
production: a commit the service was told about is on both servers, so a failover cannot take
back a recorded delivery or a created notification. Scratch clusters on free ports.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import configure_engine, dispose_engine, make_engine
from tests.notifications.fault_checks import assert_recovered, recovery, run_broadcast_through
from tests.notifications.test_resilience import (
    PER_WORKER_BOUND,
)
from tests.support.databases import TestDatabases
from tests.support.scratch_postgres import (
    ScratchCluster,
    free_port,
    give_to_os_user,
    pg_bindir,
    run,
    scratch_cluster,
)

DEVICES = 6_000


@pytest.fixture(scope="module")
def primary() -> Iterator[ScratchCluster]:
    settings = [
        "wal_level = replica",
        "max_wal_senders = 5",
        "synchronous_standby_names = '*'",
        "max_connections = 60",
    ]
    with scratch_cluster(settings=settings) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def standby(primary: ScratchCluster) -> Iterator[ScratchCluster]:
    """A streaming replica of ``primary`` made by pg_basebackup, on its own port."""
    base = Path(tempfile.mkdtemp(prefix="chuong-standby-"))
    give_to_os_user(base)
    cluster = ScratchCluster(directory=base, port=free_port())
    bindir = pg_bindir()
    run([
        str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
        "-D", str(cluster.data), "-R", "--no-sync", "-X", "stream",
    ])  # fmt: skip
    with open(cluster.data / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(
            f"port = {cluster.port}\nunix_socket_directories = '{base}'\nsynchronous_standby_names = ''\n"
        )
    run([str(bindir / "pg_ctl"), "-D", str(cluster.data), "-l", str(base / "postgres.log"), "-w", "start"])
    try:
        yield cluster
    finally:
        run([str(bindir / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def both(primary: ScratchCluster, standby: ScratchCluster, database: str, *, user: str) -> str:
    """The multi-host URL production uses: the first server that accepts writes."""
    hosts = f"host=127.0.0.1:{primary.port}&host=127.0.0.1:{standby.port}"
    return f"postgresql+asyncpg://{user}@/{database}?{hosts}&target_session_attrs=read-write"


@pytest.fixture
async def names(primary: ScratchCluster, standby: ScratchCluster) -> str:
    databases = TestDatabases(
        host="127.0.0.1", port=primary.port, superuser="postgres", prefix=f"chuong_f{uuid.uuid4().hex[:6]}"
    )
    await asyncio.to_thread(databases.prepare_template)
    return await databases.create_copy()


@pytest.fixture
async def database_url(primary, standby, names: str) -> AsyncIterator[str]:
    url = both(primary, standby, names, user="chuong_app")
    await dispose_engine()
    configure_engine(make_engine(url, pool_size=5, max_overflow=10))
    try:
        yield url
    finally:
        await dispose_engine()


@pytest.fixture
async def owner_engine(primary, standby, names: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(both(primary, standby, names, user="postgres"), pool_pre_ping=True)
    yield engine
    await engine.dispose()


def fail_over(primary: ScratchCluster, standby: ScratchCluster) -> float:
    started = time.monotonic()
    bindir = pg_bindir()
    run([str(bindir / "pg_ctl"), "-D", str(primary.data), "-m", "immediate", "-w", "stop"])
    run([str(bindir / "pg_ctl"), "-D", str(standby.data), "-w", "promote"])
    return time.monotonic() - started


@pytest.mark.slow
async def test_failover_to_the_standby_mid_broadcast_loses_nothing(
    client, database_url, owner_engine, emulated_settings, emulator, primary, standby
):
    switched = 0.0

    async def fail_over_now() -> None:
        nonlocal switched
        switched = await asyncio.to_thread(fail_over, primary, standby)

    notification_id, recovered = await run_broadcast_through(
        client, database_url, owner_engine, emulator, fail_over_now, devices=DEVICES, sent_before=1000
    )
    # The API writes to the new primary too.
    assert (await client.get("/readyz")).status_code == 200
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(
        "\npostgres failover: "
        + f"primary killed and standby promoted in {switched:.1f} s, finished {recovered:.1f} s later"
        + f"; {result.line()}"
    )
    assert_recovered(result, max_duplicates=PER_WORKER_BOUND)
