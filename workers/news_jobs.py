"""Breaking-news jobs: thin wrappers around news/workflow.py.

``news_release`` is deferred to an item's send time when it is approved; ``news_tick`` (cron)
releases whatever is due anyway — a lost job, a flushed Redis or a changed clock lose nothing —
and settles finished and cancelled items. Both are idempotent: due items are locked with
``SKIP LOCKED`` and leave the ``scheduled`` state when released.
"""

from __future__ import annotations

from core.after_commit import committing
from core.db import utcnow
from core.jobs import JobName
from news import workflow
from workers.context import JobContext, job


@job(JobName.NEWS_RELEASE)
async def news_release(ctx: JobContext, item_id: str) -> int:
    # The job only wakes the release up at the send time; which items are due is the database's
    # answer, so an early or duplicate run does nothing.
    async with committing() as session:
        return await workflow.release_due(session, now=utcnow())


@job(JobName.NEWS_TICK)
async def news_tick(ctx: JobContext) -> dict[str, int]:
    now = utcnow()
    async with committing() as session:
        released = await workflow.release_due(session, now=now)
    async with committing() as session:
        settled = await workflow.settle(session, now=now)
    return {"released": released, "settled": settled}
