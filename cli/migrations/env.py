"""Alembic environment: async engine, every domain's models imported so autogenerate sees them."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import cli.models  # noqa: F401  (registers every table on Base.metadata; the outer layer, not core)
from core.config import get_settings
from core.db import Base
from core.tls import postgres_tls_connect_args

target_metadata = Base.metadata


def _url() -> str:
    # Tests and the CLI may pass an explicit URL; otherwise the settings decide.
    return context.config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    # The owner's connection takes the service's TLS settings (CHUONG_DB_SSL_MODE), not its
    # statement bounds: migrations may run long.
    engine = create_async_engine(_url(), connect_args=postgres_tls_connect_args(get_settings()))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(run_migrations_online())
