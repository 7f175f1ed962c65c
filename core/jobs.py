"""Jobs queued by a transaction are sent to the queue only after it commits.

Services call ``defer(session, "job_name", *args, job_id=...)``; the transport that owns the
transaction (API request, job, CLI) calls ``take_deferred(session)`` after a successful commit
and hands the jobs to the queue (``workers.queue``). A rollback drops them with the change.
If the enqueue itself fails after the commit, nothing is lost: PostgreSQL holds the work and
the reconciler re-enqueues it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_KEY = "chuong_deferred_jobs"

HIGH_QUEUE = "chuong:queue:high"
BULK_QUEUE = "chuong:queue:bulk"


@dataclass(frozen=True)
class DeferredJob:
    name: str
    args: tuple[Any, ...]
    job_id: str | None = None
    queue: str = HIGH_QUEUE
    defer_until: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def defer(
    session: AsyncSession,
    name: str,
    *args: Any,
    job_id: str | None = None,
    queue: str = HIGH_QUEUE,
    defer_until: dt.datetime | None = None,
) -> None:
    sync_session = session.sync_session
    jobs: list[DeferredJob] | None = sync_session.info.get(_KEY)
    if jobs is None:
        jobs = sync_session.info[_KEY] = []
        if not event.contains(sync_session, "after_rollback", _drop):
            event.listen(sync_session, "after_rollback", _drop)
    jobs.append(DeferredJob(name=name, args=args, job_id=job_id, queue=queue, defer_until=defer_until))


def take_deferred(session: AsyncSession) -> list[DeferredJob]:
    jobs: list[DeferredJob] = session.sync_session.info.pop(_KEY, None) or []
    return jobs


def _drop(sync_session: Session) -> None:
    sync_session.info.pop(_KEY, None)
