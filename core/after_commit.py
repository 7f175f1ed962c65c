"""Work a transaction asks for that must run once it has committed, and before its transport
answers (an API request's response, a job's return).

``core.jobs`` queues jobs the same way; this is for the rare step that the caller has to wait
for, such as telling the workers that a notification was cancelled and waiting until they
stopped (notifications/cancellation.py), so that the answer can promise it. A rollback drops
the work with the change. Each callback handles its own failures: a commit has already happened.

``committing()`` is the transaction that does both: commit, then enqueue the deferred jobs, then
run these steps. Jobs and domain use cases that own their transactions use it; the API's
request session (api/deps.py) ends the same way through ``committed()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.db import transaction
from core.jobs import enqueue_deferred

_KEY = "chuong_after_commit"

AfterCommit = Callable[[], Awaitable[object]]


def call_after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    sync_session = session.sync_session
    pending: list[AfterCommit] | None = sync_session.info.get(_KEY)
    if pending is None:
        pending = sync_session.info[_KEY] = []
        if not event.contains(sync_session, "after_rollback", _drop):
            event.listen(sync_session, "after_rollback", _drop)
    pending.append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    """The transport calls this after a successful commit."""
    pending: list[AfterCommit] = session.sync_session.info.pop(_KEY, None) or []
    for callback in pending:
        await callback()


async def committed(session: AsyncSession) -> None:
    """The transport calls this once the session's transaction has committed: its deferred jobs
    are enqueued, then its after-commit steps run."""
    await enqueue_deferred(session)
    await run_after_commit(session)


@asynccontextmanager
async def committing() -> AsyncIterator[AsyncSession]:
    """A transaction whose deferred jobs are enqueued (and after-commit steps run) once it has
    committed."""
    async with transaction() as session:
        yield session
    await committed(session)


def _drop(sync_session: Session) -> None:
    sync_session.info.pop(_KEY, None)
