"""Lining concurrent requests up behind a row another transaction holds, so that a race a test is
about happens every time rather than when the scheduler happens to interleave the requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def until_waiting(owner_engine: AsyncEngine, count: int = 1) -> int:
    """Poll until ``count`` sessions of this database wait on a lock (about 4 s at most); returns
    how many wait."""
    waiting = 0
    async with owner_engine.connect() as watcher:
        for _ in range(200):
            # Each look in a transaction of its own: the statistics views keep one snapshot per
            # transaction.
            waiting = (await watcher.execute(WAITING)).scalar_one()
            await watcher.commit()
            if waiting >= count:
                break
            await asyncio.sleep(0.02)
    return waiting


async def while_held(
    owner_engine: AsyncEngine, statement: str, params: dict[str, Any], *requests: Awaitable[T]
) -> list[T]:
    """Run ``statement`` (a ``SELECT … FOR UPDATE``, an uncommitted ``INSERT``) in a transaction,
    start ``requests`` at once, let the transaction go (roll back) once all of them wait on a
    lock, and return their answers."""
    async with owner_engine.connect() as holder:
        transaction = await holder.begin()
        await holder.execute(text(statement), params)
        running = [asyncio.ensure_future(request) for request in requests]
        await until_waiting(owner_engine, len(running))
        await transaction.rollback()
        return list(await asyncio.gather(*running))
