"""PostgreSQL restarted in the middle of a broadcast (issue 18, scenario 3): the worker loses every
connection at once, in the middle of a chunk, and still every delivery ends sent, with
duplicates bounded by the chunks that were on the wire when the server went away.

The server is a scratch cluster on another port (tests/support/scratch_postgres.py): the
machine's shared PostgreSQL is never restarted. The API, the worker and the test all use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.notifications.fault_checks import assert_recovered, recovery, run_broadcast_through
from tests.notifications.test_resilience import (
    PER_WORKER_BOUND,
)
from tests.support.scratch_postgres import ScratchCluster, restart, scratch_cluster
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


@pytest.mark.slow
async def test_postgres_restarted_mid_broadcast_loses_nothing(
    client, database_url, owner_engine, emulated_settings, emulator, cluster
):
    down = 0.0

    async def restart_the_server() -> None:
        nonlocal down
        down = await asyncio.to_thread(restart, cluster)

    notification_id, recovered = await run_broadcast_through(
        client, database_url, owner_engine, emulator, restart_the_server, devices=DEVICES, sent_before=1000
    )
    result = await recovery(owner_engine, emulator, notification_id, devices=DEVICES)
    print(
        "\npostgres restart: "
        + f"down {down:.1f} s, finished {recovered:.1f} s after the restart"
        + f"; {result.line()}"
    )
    assert_recovered(result, max_duplicates=PER_WORKER_BOUND)
