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
        decided.count_in_metrics()  # committed: a decision redone after a failed commit counts once
        stats.queued += decided.queued
        stats.capped += decided.capped
        stats.no_phone += decided.no_phone
        if decided.decided < settings.sms_sweep_batch:
            break
    first = True
    while True:
        limit = _claimable(
            settings.sms_sweep_batch, slice_seconds - (time.monotonic() - started), first=first
        )
        if limit == 0:
            break
        first = False
        async with transaction() as session:
            claimed = await sender.claim(session, limit=limit, now=utcnow())
        if not claimed:
            break
        results = await sender.send_claimed(provider, claimed)
        # These messages were sent (and paid for): a write left undone sends them again once
        # their lease ends (core/db_retry.py).
        summary = await rewrite_while_transient(
            functools.partial(_record, results, provider.name), within=RECORD_RETRY_SECONDS, what="sms_record"
        )
        summary.count_in_metrics()  # committed: counted once, however many tries the write took
        stats.sent += summary.sent
        stats.retrying += summary.retrying
        stats.failed += summary.failed
    if any(stats.as_dict().values()):
        log.info("sms_sweep", **stats.as_dict())
    return stats


def _claimable(batch: int, remaining_seconds: float, *, first: bool) -> int:
    """How many messages to claim: no more than can be sent in the slice's remaining time if every
    request takes the gateway's whole timeout, so the run is never cancelled by its job's timeout
    in the middle of a send (whose answers would be lost and the messages sent again when their
    lease ended). A run's first claim sends one round at least."""
    settings = get_settings()
    rounds = int(remaining_seconds // settings.sms_timeout_seconds)
    if first:
        rounds = max(rounds, 1)
    return min(batch, rounds * settings.sms_send_concurrency)


async def _record(
    results: list[tuple[sender.ClaimedSms, SmsResult]], provider_name: str
) -> sender.SendSummary:
    async with transaction() as session:
        return await sender.record(session, results=results, provider_name=provider_name, now=utcnow())
