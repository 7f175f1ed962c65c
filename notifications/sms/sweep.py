"""One run of the SMS fallback: decide new (notification, user) pairs, then send what is due.
Idempotent and safe to overlap: deciding is guarded by the ledger's UNIQUE constraint and
sending by leases with ``SKIP LOCKED``."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from core.clock import utcnow
from core.config import get_settings
from core.context import RequestContext, current_context, set_context
from core.db import transaction
from core.db_retry import rewrite_while_transient
from core.logging import get_logger
from notifications.providers.sms import SmsProvider, SmsResult
from notifications.sms import fallback, sender

log = get_logger(__name__)

SLICE_SECONDS = 40.0  # inside the cron job's timeout; the next minute's run continues
RECORD_RETRY_SECONDS = 10.0  # within the lease (2 × the gateway's timeout + 30 s)


@dataclass
class SweepStats:
    queued: int = 0
    capped: int = 0
    no_phone: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "queued": self.queued,
            "capped": self.capped,
            "no_phone": self.no_phone,
            "sent": self.sent,
            "retrying": self.retrying,
            "failed": self.failed,
        }


async def run_once(provider: SmsProvider, *, slice_seconds: float = SLICE_SECONDS) -> SweepStats:
    # Decisions and sends are the system's own acts, whoever's context calls the sweep.
    previous = current_context()
    set_context(RequestContext(actor_kind="system"))
    try:
        return await _run(provider, slice_seconds)
    finally:
        set_context(previous)


async def _run(provider: SmsProvider, slice_seconds: float) -> SweepStats:
    settings = get_settings()
    started = time.monotonic()
    stats = SweepStats()
    while time.monotonic() - started < slice_seconds:
        async with transaction() as session:
            decided = await fallback.decide(session, now=utcnow())
        stats.queued += decided.queued
        stats.capped += decided.capped
        stats.no_phone += decided.no_phone
        if decided.decided < settings.sms_sweep_batch:
            break
    while time.monotonic() - started < slice_seconds:
        async with transaction() as session:
            claimed = await sender.claim(session, limit=settings.sms_sweep_batch, now=utcnow())
        if not claimed:
            break
        results = await sender.send_claimed(provider, claimed)
        # These messages were sent (and paid for): a write left undone sends them again once
        # their lease ends (core/db_retry.py).
        summary = await rewrite_while_transient(
            functools.partial(_record, results, provider.name), within=RECORD_RETRY_SECONDS, what="sms_record"
        )
        stats.sent += summary.sent
        stats.retrying += summary.retrying
        stats.failed += summary.failed
    if any(stats.as_dict().values()):
        log.info("sms_sweep", **stats.as_dict())
    return stats


async def _record(
    results: list[tuple[sender.ClaimedSms, SmsResult]], provider_name: str
) -> sender.SendSummary:
    async with transaction() as session:
        return await sender.record(session, results=results, provider_name=provider_name, now=utcnow())
