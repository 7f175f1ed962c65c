"""The language summary's fold (notifications/language_summary.py): a unique cron every minute,
so that reports read a push's per-language figures from the summary soon after it finished."""

from __future__ import annotations

from core.db import utcnow
from core.jobs import JobName
from notifications import retention
from workers.context import JobContext, job

# Inside the cron's 55 s timeout (workers/settings.py); what is left waits a minute.
BUDGET_SECONDS = 40.0


@job(JobName.SUMMARIZE_LANGUAGES)
async def summarize_languages(ctx: JobContext) -> dict[str, int | bool]:
    return await retention.summarize_languages(now=utcnow(), budget_seconds=BUDGET_SECONDS)
