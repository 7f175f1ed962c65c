"""Hot-path statements run on a session's asyncpg connection, without SQLAlchemy in between.

The send pipeline runs a handful of fixed statements per 125-message chunk (claim, record,
settle). Through ``session.execute`` each costs SQLAlchemy's execution machinery (a greenlet
switch, the ORM's execute path, a cursor adapter, Row objects); on the driver it is asyncpg's
cached prepared statement and its records. ``RawStatement`` keeps the statement's text in the
``:name`` style SQLAlchemy's ``text()`` takes, so the same SQL can also be read and tested as
before, and runs it with positional parameters.

Transactions: the statement runs in the session's transaction once one has begun (the asyncpg
adapter starts it lazily, at the session's first statement); before that, it runs on its own
and commits by itself, with no BEGIN and COMMIT round trips. So a single-statement write that
needs no transaction around it costs one round trip, and a caller that needs several writes
to commit together runs a statement through the session first (``text`` is the same SQL).

Without a session (``pooled_driver``): a connection straight from the engine's pool, its driver
used for a few statements, then handed back. A session around one statement costs several times
the statement's own CPU (the session and its transaction objects, the engine ``Connection``, the
events, their teardown: ≈ 240 µs against ≈ 28 µs, docs/benchmarks.md), and the send pipeline
runs several a batch. There is no transaction there: each statement commits by itself.

Errors are raised as SQLAlchemy's ``DBAPIError`` (``orig`` is asyncpg's), as a statement
through the session would, so that ``core.db.is_bounded_wait`` and ``core.db.lost_connection``
classify them alike (``core.db_retry`` writes again on them); a connection that broke under the
statement is invalidated so that the pool replaces it (SQLAlchemy does that for its own
statements; a broken connection handed back unnoticed would fail every statement run on it until
its next idle ping). A checkout that fails is raised as the session's would be: the pool's
bounded wait as its ``TimeoutError``, a refused connection as a ``DBAPIError`` (or the socket's
``OSError``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from core.db import get_engine

# ``:name`` but not a ``::type`` cast (nor the second colon of one).
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# The server ended the session (shutdown, crash, failover) or the socket went: the connection is
# no use any more, whatever ``is_closed`` says yet.
_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    # The protocol's own state is off (a statement sent while the server's termination notice was
    # being read: "cannot switch to state …; another operation is in progress").
    asyncpg.exceptions.InternalClientError,
    OSError,
)


class RawStatement:
    """One statement with ``:name`` parameters, run on the session's asyncpg connection."""

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.text = sql
        self.sql = _PARAMETER.sub(number, sql)
        self.names = tuple(names)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]

    async def fetch(
        self, where: AsyncSession | PooledDriver, params: Mapping[str, Any]
    ) -> Sequence[asyncpg.Record]:
        """On the session's connection, or on a connection checked out without one."""
        if isinstance(where, PooledDriver):
            return await where.fetch(self, params)
        connection = await where.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None  # a checked-out connection always has one
        arguments = self.arguments(params)
        try:
            rows: list[asyncpg.Record] = await driver.fetch(self.sql, *arguments)
        except (asyncpg.PostgresError, *_BROKEN) as exc:
            broken = driver.is_closed() or isinstance(exc, _BROKEN)
            if broken:
                await connection.invalidate(exc)
            raise DBAPIError(self.sql, arguments, exc, connection_invalidated=broken) from exc
        return rows

    async def fetchrow(
        self, where: AsyncSession | PooledDriver, params: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        rows = await self.fetch(where, params)
        return rows[0] if rows else None


class PooledDriver:
    """A pooled connection's asyncpg driver, checked out without a session (``pooled_driver``)."""

    def __init__(self, pooled: PoolProxiedConnection) -> None:
        self._pooled = pooled
        self.broken = False  # invalidated: the pool replaces it

    async def fetch(self, statement: RawStatement, params: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        driver = self._pooled.driver_connection
        arguments = statement.arguments(params)
        if driver is None or self.broken:  # invalidated by an earlier statement
            gone = ConnectionError("connection invalidated")
            raise DBAPIError(statement.sql, arguments, gone, connection_invalidated=True)
        try:
            rows: list[asyncpg.Record] = await driver.fetch(statement.sql, *arguments)
        except (asyncpg.PostgresError, *_BROKEN) as exc:
            broken = driver.is_closed() or isinstance(exc, _BROKEN)
            if broken:
                await self._invalidate(exc)
            raise DBAPIError(statement.sql, arguments, exc, connection_invalidated=broken) from exc
        except BaseException as exc:
            # Cancelled (or failed otherwise) mid-statement: the connection may be mid-protocol.
            await self._invalidate(exc)
            raise
        return rows

    async def fetchrow(self, statement: RawStatement, params: Mapping[str, Any]) -> asyncpg.Record | None:
        rows = await self.fetch(statement, params)
        return rows[0] if rows else None

    async def _invalidate(self, exc: BaseException) -> None:
        if not self.broken:
            self.broken = True
            await greenlet_spawn(self._pooled.invalidate, exc if isinstance(exc, Exception) else None)


@asynccontextmanager
async def pooled_driver() -> AsyncIterator[PooledDriver]:
    """A connection of the engine's pool (the same pool as the sessions', with its checkout ping
    after idle and its bounded wait) for a few statements, each committing by itself, handed
    back when the block ends."""
    engine = get_engine()
    dialect = engine.sync_engine.dialect
    try:
        pooled = await engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:
        # As a session's checkout raises it (sqlalchemy.engine.Connection): wrapped, and marked
        # invalidated when the server went away.
        raise DBAPIError.instance(
            None,
            None,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(exc, None, None),
            dialect=dialect,
        ) from exc
    driver = PooledDriver(pooled)
    try:
        yield driver
    finally:
        # Back to the pool (its checkin events and reset run as for any connection; with no
        # transaction begun the reset sends nothing); an invalidated one went back when it was
        # invalidated. In a greenlet: an overflow connection is closed on its return, which
        # awaits the driver.
        if not driver.broken:
            await greenlet_spawn(pooled.close)
