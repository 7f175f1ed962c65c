"""Anchoring the service clock (core/clock.py) to PostgreSQL's.

PostgreSQL is the system of record, and every lease, due time and expiry a worker judges was
written there, by some process, against some clock. Reading the database's clock once a minute
and carrying it forward with a clock that is never stepped (core/clock.py ``carrying``) gives
every process of a deployment one clock that a step of its own host's wall clock (NTP, an
operator, a VM resumed) does not move. That clock drifts from real time by parts per million,
so a minute between readings keeps the processes within milliseconds of each other; a reading
whose round trip took longer than ``MAX_ROUND_TRIP_SECONDS`` is not trusted (the previous anchor
stays).
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy import text

from core import clock
from core.db import get_engine
from core.logging import get_logger

log = get_logger(__name__)

EVERY_SECONDS = 60.0
RETRY_SECONDS = 5.0
MAX_ROUND_TRIP_SECONDS = 0.5
# A host clock this far off the database's is worth an operator's look (logged once per change).
SKEW_WORTH_LOGGING_SECONDS = 2.0

_logged_skew = 0.0


async def sync_once() -> bool:
    """Read the database's clock and anchor the service clock to it. False (anchor unchanged)
    when the reading took too long to be precise."""
    global _logged_skew
    async with get_engine().connect() as connection:
        await connection.execute(text("SELECT 1"))  # the connection is open and warm
        before = clock.carrying()
        reference = (await connection.execute(text("SELECT clock_timestamp()"))).scalar_one()
        after = clock.carrying()
    if after - before > MAX_ROUND_TRIP_SECONDS:
        return False
    clock.anchor(reference, at=(before + after) / 2)
    skew = clock.wall_clock_skew()
    if abs(skew - _logged_skew) >= SKEW_WORTH_LOGGING_SECONDS:
        # Nothing depends on the host's clock any more; the line says it is off (or back).
        log.warning("wall_clock_skew", seconds=round(skew, 3), reference="database")
        _logged_skew = skew
    return True


async def keep_in_sync(*, every: float = EVERY_SECONDS, synced: bool = False) -> None:
    """Anchor again every ``every`` seconds (sooner while the last reading failed, e.g. the
    database was away: the carrying clock takes the last anchor on meanwhile)."""
    while True:
        await asyncio.sleep(every if synced else RETRY_SECONDS)
        synced = await _try_sync()


async def _try_sync() -> bool:
    try:
        return await sync_once()
    except Exception as exc:  # the database may be away: the last anchor stays
        log.warning("clock_sync_failed", error=type(exc).__name__)
        return False


_task: asyncio.Task[None] | None = None


async def start() -> None:
    """Anchor once before anything reads the clock (best effort: a process starts even with the
    database away), then keep it anchored. One task per process: starting again (a worker's arq
    loop restarted after a Redis outage) replaces the previous one."""
    global _task
    stop()
    synced = await _try_sync()
    _task = asyncio.create_task(keep_in_sync(synced=synced), name="clock-sync")


def stop() -> None:
    """Stop re-anchoring; the clock keeps its last anchor."""
    global _task
    if _task is not None:
        with contextlib.suppress(RuntimeError):  # its event loop is already closed
            _task.cancel()
        _task = None
