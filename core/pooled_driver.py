"""Statements on a pooled connection's driver (asyncpg), without a session.

The read surge after a push is mostly a device's unread count: one statement (its credential and
its count, devices/credentials.py). Through an ``AsyncSession`` that statement also paid for the
session's machinery — its transaction object, the engine ``Connection`` and their teardown, two
greenlet switches — about as much API CPU as the statement itself. Here the connection comes
straight from the engine's pool (the same pool, so no extra connections to PostgreSQL; the pool's
checkout ping after idle and its bounded wait apply as to every checkout) and goes back to it as
soon as the statement is read, before the route's work, which holds no connection while it runs.

Each statement checks out its own connection: a request holding one while its session waits
for another (an app's broadcast window read again, the apps' copy reloaded) could starve the
pool under a surge, every request holding one and waiting for a second.

There is no transaction: each statement runs as asyncpg runs one outside a transaction (its own
implicit one). A driver error discards the connection (its state is unknown) and raises
``DriverFailed``; the caller runs the statement again through SQLAlchemy, which classifies the
failure as everywhere else (a dead connection is dropped and the request answered 503).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.util import greenlet_spawn

from core.db import get_engine


class DriverFailed(Exception):
    """The statement failed on the driver; its connection was discarded."""


async def fetch_row(statement: str, parameters: Sequence[object]) -> dict[str, Any] | None:
    """``statement``'s first row (or None) on a pooled connection (see the module's docstring)."""
    record = await _run("fetchrow", statement, parameters)
    return dict(record) if record is not None else None


async def fetch(statement: str, parameters: Sequence[object]) -> list[Any]:
    """``statement``'s rows (asyncpg ``Record``s: by position or by name)."""
    records: list[Any] = await _run("fetch", statement, parameters)
    return records


async def _run(method: str, statement: str, parameters: Sequence[object]) -> Any:
    pooled = await get_engine().raw_connection()
    try:
        driver = pooled.driver_connection
        if driver is None:  # invalidated meanwhile
            raise ConnectionError("no driver connection")
        result = await getattr(driver, method)(statement, *parameters)
    except BaseException as exc:
        # Failed or cancelled mid-statement: the connection may be mid-protocol; never reuse it.
        await greenlet_spawn(pooled.invalidate)
        if isinstance(exc, Exception):
            raise DriverFailed(type(exc).__name__) from exc
        raise
    # Back to the pool (its checkin events and reset run as for any connection; with no
    # transaction begun the reset sends nothing). In a greenlet: an overflow connection is
    # closed on its return, which awaits the driver.
    await greenlet_spawn(pooled.close)
    return result
