"""The service's database on a scratch cluster (tests/support/scratch_postgres.py): migrated like
the shared test template, the app's engine pointed at it, and the owner's engine for inspection.
For fault tests that restart or starve the server; test modules override the ``database_url``
and ``owner_engine`` fixtures with it, so ``client`` and the rest follow."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.db import configure_engine, dispose_engine, make_engine
from tests.support.databases import TestDatabases
from tests.support.scratch_postgres import ScratchCluster


@dataclass(frozen=True)
class ServiceDatabase:
    app_url: str
    owner: AsyncEngine


@contextlib.asynccontextmanager
async def service_database(cluster: ScratchCluster) -> AsyncIterator[ServiceDatabase]:
    databases = TestDatabases(
        host="127.0.0.1", port=cluster.port, superuser="postgres", prefix=f"chuong_s{uuid.uuid4().hex[:6]}"
    )
    await asyncio.to_thread(databases.prepare_template)
    name = await databases.create_copy()
    url = databases.app_url(name)
    await dispose_engine()
    configure_engine(make_engine(url, pool_size=5, max_overflow=10))
    owner = create_async_engine(databases.owner_url(name), pool_pre_ping=True)
    try:
        yield ServiceDatabase(app_url=url, owner=owner)
    finally:
        await owner.dispose()
        await dispose_engine()
