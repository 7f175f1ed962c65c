"""Inbox jobs: thin wrappers around inbox/fanout.py (per-recipient inbox rows)."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from core.after_commit import committing
from core.config import get_settings
from core.db import utcnow
from core.jobs import JobName, defer
from inbox import fanout
from notifications.models import Notification
from workers.context import JobContext, job

SLICE_SECONDS = 40.0  # inside the 60 s job timeout; the job hands over to a fresh one
MAX_REQUEUES = 50


@job(JobName.INBOX_FAN_OUT)
async def inbox_fan_out(ctx: JobContext, notification_id: str) -> int:
    nid = uuid.UUID(notification_id)
    started = time.monotonic()
    pages = 0
    while True:
        async with committing() as session:
            more = await fanout.write_page(session, notification_id=nid, now=utcnow())
            pages += 1
            if more and time.monotonic() - started > SLICE_SECONDS:
                notification = await session.get(Notification, nid)
                assert notification is not None
                defer(
                    session,
                    JobName.INBOX_FAN_OUT,
                    notification_id,
                    # The service clock: a stepped-back host clock could repeat an id whose
                    # result arq still keeps, and the hand-over would be dropped.
                    job_id=f"inbox:{nid}:s{int(utcnow().timestamp())}",
                    queue=fanout.queue_of(notification.priority),
                )
                return pages
        if not more:
            return pages


@job(JobName.INBOX_RECONCILE)
async def inbox_reconcile(ctx: JobContext) -> int:
    """Re-queue inbox fan-outs whose job was lost (flushed Redis, killed worker): they resume
    from their saved cursor."""
    now = utcnow()
    tick = int(now.timestamp() // 15)
    grace = dt.timedelta(seconds=get_settings().reconcile_grace_seconds)
    async with committing() as session:
        stalled = await fanout.stalled(session, before=now - grace, limit=MAX_REQUEUES)
        for notification_id, queue in stalled:
            defer(
                session,
                JobName.INBOX_FAN_OUT,
                str(notification_id),
                job_id=f"inbox:{notification_id}:r{tick}",
                queue=queue,
            )
    return len(stalled)
