"""Jobs queued by a transaction are sent to the queue only after it commits.

Services call ``defer(session, JobName.X, *args, job_id=...)``; whoever owns the transaction
(``core.after_commit.committing``, the API's request session) hands them, once the commit has
succeeded, to the enqueuer that the process registered at start-up (``set_enqueuer``: the worker's
start-up and the served app's factory, ``cli/asgi.py``, register arq's, ``workers/queue.py``). core
knows only the callable, so the queue library stays behind ``workers/``. A rollback drops the jobs with the
change. If the enqueue itself fails after the commit, nothing is lost: PostgreSQL holds the work
and the reconciler re-enqueues it.

``JobName`` is the one list of job names: domains defer by it, and workers/ registers exactly one
function under each (``workers.context.job``; tests/workers/test_job_names.py checks both ways).
It lives here, the lowest layer, so that domains name jobs without importing workers/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.logging import get_logger

log = get_logger(__name__)

_KEY = "chuong_deferred_jobs"

HIGH_QUEUE = "chuong:queue:high"
BULK_QUEUE = "chuong:queue:bulk"

# The ids of the jobs that carry a broadcast's bulk: its send batches (queued by a fan-out page, a
# retry or the reconciler) and its fan-out after the first slice. A worker starts these in the
# order they were queued and holds only a few send jobs at a time; every other job (a new
# notification's fan-out, the tracking sweep and sender, news releases, the crons) starts ahead
# of them (workers/arq_worker.py). Send jobs are interchangeable wake-ups: each sends the most
# urgent due batch of its queue (notifications/outbox.py ``claim_most_urgent``).
SEND_JOB_PREFIXES = ("send:", "retry:", "resend:")
FAN_OUT_MORE_PREFIX = "fanout-next:"
# The send job of a notification's first page (its first 500 devices): not backlog. A worker
# starts it at its next poll, ahead of the backlog and within a room of its own, and it may send
# on the worker's first-page lane, beside the batch the worker is starting
# (notifications/first_page_lane.py; docs/delivery.md "Urgent before bulk").
FIRST_PAGE_PREFIX = "first:"
# A new notification's fan-out (its first slice), a scheduled news item's release and the tracking
# sender: latency-critical like a first page, which the urgent worker role starts
# (workers/roles.py), never backlog.
FAN_OUT_PREFIX = "fanout:"
NEWS_RELEASE_PREFIX = "news-release:"
TRACKING_SEND_PREFIX = "tracking-send:"


def is_send_job(job_id: str) -> bool:
    """A send job of the backlog (a first page's job is not one: ``is_first_page_job``)."""
    return job_id.startswith(SEND_JOB_PREFIXES)


def is_first_page_job(job_id: str) -> bool:
    return job_id.startswith(FIRST_PAGE_PREFIX)


def is_backlog_job(job_id: str) -> bool:
    """A send job or a fan-out's next slice: started in queue order, behind everything else."""
    return is_send_job(job_id) or job_id.startswith(FAN_OUT_MORE_PREFIX)


class JobName(StrEnum):
    """The name each job is queued and registered under (arq's function name)."""

    FAN_OUT = "fan_out"
    SEND_BATCH = "send_batch"
    RECONCILE = "reconcile"
    PURGE = "purge"
    PURGE_ENDED_SESSIONS = "purge_ended_sessions"
    INBOX_FAN_OUT = "inbox_fan_out"
    INBOX_RECONCILE = "inbox_reconcile"
    SMS_FALLBACK = "sms_fallback"
    NEWS_RELEASE = "news_release"
    NEWS_TICK = "news_tick"
    TRACKING_SWEEP = "tracking_sweep"
    TRACKING_SEND = "tracking_send"
    AUDIT_PARTITIONS = "audit_partitions"
    MEASURE_FIGURES = "measure_figures"
    SUMMARIZE_LANGUAGES = "summarize_languages"


@dataclass(frozen=True)
class DeferredJob:
    name: JobName
    args: tuple[Any, ...]
    job_id: str | None = None
    queue: str = HIGH_QUEUE
    defer_until: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def defer(
    session: AsyncSession,
    name: JobName,
    *args: Any,
    job_id: str | None = None,
    queue: str = HIGH_QUEUE,
    defer_until: dt.datetime | None = None,
) -> None:
    # A name that is not a JobName (a string past the type checker) fails here, in the
    # transaction that defers it, not later in a worker that has no such function.
    name = JobName(name)
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


Enqueuer = Callable[[list[DeferredJob]], Awaitable[None]]
"""Sends jobs to the queue; best effort (it logs its own failures: the commit has happened)."""

_enqueuer: Enqueuer | None = None


def set_enqueuer(enqueuer: Enqueuer | None) -> None:
    """Registered once at start-up by the process's transport."""
    global _enqueuer
    _enqueuer = enqueuer


async def enqueue_deferred(session: AsyncSession) -> None:
    """After a successful commit: send the jobs the transaction deferred."""
    jobs = take_deferred(session)
    if not jobs:
        return
    if _enqueuer is None:
        # A process that commits deferred work must register an enqueuer at start-up; should one
        # forget, the work is still in PostgreSQL and the reconciler queues it.
        log.warning("enqueue_skipped", reason="no_enqueuer", jobs=len(jobs))
        return
    await _enqueuer(jobs)


def _drop(sync_session: Session) -> None:
    sync_session.info.pop(_KEY, None)
