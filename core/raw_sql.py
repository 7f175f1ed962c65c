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

Errors are raised as SQLAlchemy's ``DBAPIError`` (``orig`` is asyncpg's), as a statement
through the session would; a connection that broke under the statement is invalidated so that
the pool replaces it (SQLAlchemy does that for its own statements; a broken connection handed
back unnoticed would fail every statement run on it until its next idle ping).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

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

    async def fetch(self, session: AsyncSession, params: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        connection = await session.connection()
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

    async def fetchrow(self, session: AsyncSession, params: Mapping[str, Any]) -> asyncpg.Record | None:
        rows = await self.fetch(session, params)
        return rows[0] if rows else None
