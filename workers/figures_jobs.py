"""The periodic measurement of the service-wide figures the API exports (notifications/figures.py):
a unique cron, so one worker measures per tick for the whole service."""

from __future__ import annotations

from core.db import utcnow
from core.jobs import JobName
from notifications import figures
from workers.context import JobContext, job


@job(JobName.MEASURE_FIGURES)
async def measure_figures(ctx: JobContext) -> dict[str, float]:
    measured = await figures.measure_and_publish(now=utcnow())
    return {
        "due_deliveries": sum(work.deliveries for work in measured.due),
        "oldest_due_age_seconds": max(work.oldest_due_age_seconds for work in measured.due),
        "fanouts_running": measured.fanouts_running,
    }
