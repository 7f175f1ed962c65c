"""Tracking jobs: thin wrappers around tracking/sweep.py and tracking/sender.py.

``tracking_sweep`` runs every minute (cron): it writes due reminders to the ledger and queues
senders. ``tracking_send`` drains pending ledger rows in chunks, one transaction per chunk; any
number of senders may run at once (rows are claimed with SKIP LOCKED). Because the sweep queues
a sender whenever pending rows exist, a lost sender job is replaced within a minute.
"""

from __future__ import annotations

import time

from core.after_commit import committing
from core.config import get_settings
from core.db import utcnow
from core.jobs import HIGH_QUEUE, TRACKING_SEND_PREFIX, JobName, defer
from tracking import sender
from tracking.calendar import load_calendar
from tracking.rules import get_rules
from tracking.sweep import sweep
from workers.context import JobContext, job

SLICE_SECONDS = 40.0  # inside the 60 s job timeout; the sweep queues a fresh sender after
MAX_SENDERS = 4


@job(JobName.TRACKING_SWEEP)
async def tracking_sweep(ctx: JobContext) -> dict[str, int]:
    now = utcnow()
    rules = get_rules()
    async with committing() as session:
        calendar = await load_calendar(session)
        result = await sweep(session, now=now, calendar=calendar, rules=rules)
        pending = await sender.pending_push_count(session)
        senders = min(MAX_SENDERS, -(-pending // get_settings().tracking_send_chunk))
        minute = int(now.timestamp() // 60)
        for n in range(senders):
            job_id = f"{TRACKING_SEND_PREFIX}{minute}:{n}"
            defer(session, JobName.TRACKING_SEND, job_id=job_id, queue=HIGH_QUEUE)
    async with committing() as session:
        digests = await sender.send_digests(session, now=now, calendar=calendar, rules=rules)
    return {
        "pushes": result.pushes,
        "digests_queued": result.digests,
        "digests_sent": digests,
        "senders": senders,
    }


@job(JobName.TRACKING_SEND)
async def tracking_send(ctx: JobContext) -> int:
    started = time.monotonic()
    chunk = get_settings().tracking_send_chunk
    rules = get_rules()
    total = 0
    while time.monotonic() - started < SLICE_SECONDS:
        async with committing() as session:
            claimed = await sender.send_pending(session, now=utcnow(), rules=rules, limit=chunk)
        total += claimed
        if claimed < chunk:
            break
    return total
