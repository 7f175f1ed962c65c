"""Template-database management for tests (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field

import asyncpg
from alembic import command

from cli.migration_config import alembic_config

APP_ROLE = "chuong_app"


@dataclass
class TestDatabases:
    __test__ = False  # a helper, not a test class (pytest would try to collect it by its name)

    host: str
    port: int
    superuser: str
    prefix: str
    template: str = ""
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _dropper: _Dropper | None = None

    @classmethod
    def from_env(cls) -> TestDatabases:
        # A per-run prefix, so parallel runs (a developer and CI) never collide.
        return cls(
            host=os.environ.get("CHUONG_TEST_PG_HOST", "127.0.0.1"),
            port=int(os.environ.get("CHUONG_TEST_PG_PORT", "5432")),
            superuser=os.environ.get("CHUONG_TEST_PG_SUPERUSER", "postgres"),
            prefix=f"chuong_t{uuid.uuid4().hex[:8]}",
        )

    def owner_url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.superuser}@{self.host}:{self.port}/{database}"

    def app_url(self, database: str) -> str:
        return f"postgresql+asyncpg://{APP_ROLE}@{self.host}:{self.port}/{database}"

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(host=self.host, port=self.port, user=self.superuser, database="postgres")

    def prepare_template(self) -> None:
        asyncio.run(self._create_template())
        command.upgrade(alembic_config(self.owner_url(self.template)), "head")

    async def _create_template(self) -> None:
        self.template = f"{self.prefix}_tpl"
        conn = await self._admin()
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
            if not exists:
                # Another test run may create it at the same moment.
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN")
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()

    async def create_copy(self) -> str:
        name = f"{self.prefix}_{next(self._counter)}"
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await conn.close()
        return name

    async def drop(self, name: str) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    def release(self, name: str) -> None:
        """Drop this test's copy in the background: the test does not wait for it (see _Dropper)."""
        if self._dropper is None:
            self._dropper = _Dropper(self)
        self._dropper.submit(name)

    def cleanup(self) -> None:
        if self._dropper is not None:
            self._dropper.close()
        # Whatever the dropper could not drop (and the template) goes here.

        async def _drop_all() -> None:
            conn = await self._admin()
            try:
                names = await conn.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1", f"{self.prefix}%"
                )
                for row in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(_drop_all())


class _Dropper:
    """Drops released test databases from a thread of its own.

    DROP DATABASE waits for a checkpoint of the whole server (PostgreSQL 15 forces one to forget
    the database's pending fsync requests): ~0.3 s on an idle machine, over a second on a busy
    one, in every test's teardown. Here the test goes on at once; drops that are pending together
    run concurrently (``PARALLEL`` at a time), so that their checkpoint requests fold into one.
    At most ``MAX_PENDING`` copies wait, so a slow server holds the tests back instead of filling
    the disk."""

    MAX_PENDING = 8
    # Connections at once: the server's max_connections (100 by default) is shared by every
    # xdist worker's tests, their live stacks and the other runs on the machine.
    PARALLEL = 4

    def __init__(self, databases: TestDatabases) -> None:
        self._databases = databases
        self._pending: queue.Queue[str | None] = queue.Queue(maxsize=self.MAX_PENDING)
        self._thread = threading.Thread(target=self._run, name="test-database-dropper", daemon=True)
        self._thread.start()

    def submit(self, name: str) -> None:
        self._pending.put(name)

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join()

    def _run(self) -> None:
        stop = False
        while not stop:
            batch: list[str] = []
            item = self._pending.get()
            while item is not None:
                batch.append(item)
                if len(batch) == self.PARALLEL:
                    break
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
            stop = item is None
            if batch:
                # A failed drop is left to cleanup(), which drops every database of the run.
                with contextlib.suppress(Exception):
                    asyncio.run(self._drop(batch))

    async def _drop(self, names: list[str]) -> None:
        await asyncio.gather(*(self._databases.drop(name) for name in names), return_exceptions=True)
