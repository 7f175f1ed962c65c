"""PostgreSQL restarted in the middle of a broadcast (issue 18, scenario 3): the worker loses every
connection at once, in the middle of a chunk, and still every delivery ends sent, with
duplicates bounded by the chunks that were on the wire when the server went away.

The server is a scratch cluster on another port (tests/support/scratch_postgres.py): the
machine's shared PostgreSQL is never restarted. The API, the worker and the test all use it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.notifications.fault_checks import assert_recovered, recovery
from tests.notifications.helpers import broadcast, central_sender
from tests.notifications.test_resilience import (
    PER_WORKER_BOUND,
    counts,
    insert_devices,
    start_worker,
    stop,
    wait_for,
)
from tests.support.scratch_postgres import ScratchCluster, pg_bindir, run, scratch_cluster
from tests.support.scratch_service_db import ServiceDatabase, service_database

DEVICES = 6_000


@pytest.fixture(scope="module")
def cluster() -> Iterator[ScratchCluster]:
    with scratch_cluster(settings=["max_connections = 60"]) as scratch:
        yield scratch


@pytest.fixture
async def service_db(cluster: ScratchCluster) -> AsyncIterator[ServiceDatabase]:
    async with service_database(cluster) as db:
        yield db


@pytest.fixture
def database_url(service_db: ServiceDatabase) -> str:
    """This module's database lives on the scratch cluster (overrides tests/conftest.py's)."""
    return service_db.app_url


@pytest.fixture
def owner_engine(service_db: ServiceDatabase) -> AsyncEngine:
    return service_db.owner


def restart(cluster: ScratchCluster) -> float:
    """Stop the server at once (every session dies mid-statement, as in a crash or a failover)
    and start it again; returns how long it was down."""
    started = time.monotonic()
    run([str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "-m", "immediate", "-w", "stop"])
    run([
        str(pg_bindir() / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.directory / "postgres.log"),
        "-w", "start",
    ])  # fmt: skip
    return time.monotonic() - started


@pytest.mark.slow
async def test_postgres_restarted_mid_broadcast_loses_nothing(
    client, database_url, owner_engine, emulated_settings, emulator, cluster
):
    await insert_devices(owner_engine, DEVICES)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    worker = start_worker(database_url, emulator)
    try:

        async def some_sent() -> bool:
            return (await counts(owner_engine, notification_id)).get("sent", 0) >= 1000

        await wait_for(some_sent, timeout=120, what="some pushes to go out")
        down = await asyncio.to_thread(restart, cluster)
        restarted_at = time.monotonic()

        async def done() -> bool:
            try:
                return (await counts(owner_engine, notification_id))["notification"] == "completed"
            except OSError:  # the test's own connection may meet the restart too
                return False

        await wait_for(done, timeout=240, what="the worker to finish after the restart")
        recovered = time.monotonic() - restarted_at
        assert worker.poll() is None, "the worker must survive a database restart, not exit"
    finally:
        stop(worker)

    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(
        "\npostgres restart: "
        + f"down {down:.1f} s, finished {recovered:.1f} s after the restart"
        + f"; {result.line()}"
    )
    assert_recovered(result, max_duplicates=PER_WORKER_BOUND)
