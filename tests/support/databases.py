"""Template-database management for tests (see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
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

    def cleanup(self) -> None:
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
