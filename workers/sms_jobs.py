"""The SMS fallback cron (D-31): a thin wrapper around notifications/sms/sweep.py."""

from __future__ import annotations

from core.config import get_settings
from core.jobs import JobName
from notifications.providers.sms_registry import build_sms_provider
from notifications.sms import sweep
from workers.context import JobContext, job


@job(JobName.SMS_FALLBACK)
async def sms_fallback(ctx: JobContext) -> dict[str, int]:
    """Every minute: SMS for unacknowledged emergencies (and, in degraded mode, high priority);
    then send or retry what is due. Overlapping runs send each SMS once."""
    provider = ctx.worker.sms_provider
    if provider is not None:
        return (await sweep.run_once(provider)).as_dict()
    # One aiohttp session per run: a run a minute does not need a long-lived pool.
    built = build_sms_provider(get_settings())
    try:
        return (await sweep.run_once(built)).as_dict()
    finally:
        await built.close()
