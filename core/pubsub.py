"""Redis pub/sub wake-ups published only once the transaction that caused them has committed (a
rolled-back change is never announced).

Pub/sub is only a wake-up: PostgreSQL stays the record, and a listener that missed one reads
what it needs from there. Each domain names its own channels (inbox/events.py for the inbox
streams, notifications/channels.py for a notification's progress stream).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.logging import get_logger
from core.redis import get_redis

log = get_logger(__name__)

_KEY = "chuong_pubsub_after_commit"
_IN_FLIGHT: set[asyncio.Task[None]] = set()


def publish_after_commit(session: AsyncSession, channel: str, payload: dict[str, Any]) -> None:
    sync_session = session.sync_session
    pending: list[tuple[str, bytes]] | None = sync_session.info.get(_KEY)
    if pending is None:
        pending = sync_session.info[_KEY] = []
        if not event.contains(sync_session, "after_commit", _after_commit):
            event.listen(sync_session, "after_commit", _after_commit)
            event.listen(sync_session, "after_rollback", _drop)
    pending.append((channel, orjson.dumps(payload)))


def publish_committed(channel: str, payload: dict[str, Any]) -> None:
    """For a change that has already committed (a statement that commits by itself, without a
    session: core/raw_sql.py ``pooled_driver``): published in the background, as after a
    commit."""
    _start([(channel, orjson.dumps(payload))])


def _drop(sync_session: Session) -> None:
    sync_session.info.pop(_KEY, None)


def _after_commit(sync_session: Session) -> None:
    pending: list[tuple[str, bytes]] = sync_session.info.pop(_KEY, None) or []
    if not pending:
        return
    # Called from inside the commit on the event loop's thread: hand the publishing to a task so
    # the commit never waits for Redis.
    _start(pending)


def _start(pending: list[tuple[str, bytes]]) -> None:
    task = asyncio.get_running_loop().create_task(_publish(pending))
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)


async def _publish(pending: list[tuple[str, bytes]]) -> None:
    try:
        async with get_redis().pipeline(transaction=False) as pipe:
            for channel, data in pending:
                pipe.publish(channel, data)
            await pipe.execute()
    except Exception as exc:  # Redis down: live streams miss a wake-up, a reconnect replays
        log.warning("pubsub_publish_failed", error=type(exc).__name__, events=len(pending))


async def drain() -> None:
    """Wait for publishes in flight (tests, and workers before they exit)."""
    if _IN_FLIGHT:
        await asyncio.gather(*list(_IN_FLIGHT), return_exceptions=True)
