"""Sending queued SMS: claim, send outside any transaction, record.

Claiming leases rows (``FOR UPDATE SKIP LOCKED``), so two workers never take the same row.
A row whose lease ran out (killed worker) is sent again with the same reference; the gateway's
idempotency key turns that resend into a no-op where the gateway supports it. Transient
failures are retried with backoff up to ``sms_max_attempts``, then recorded ``failed``; every
sent or failed SMS writes an audit row. Recording is fenced on (id, attempts), so a late
result of an expired lease cannot overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import get_settings
from core.crypto import decrypt_text
from core.logging import get_logger
from notifications.providers.sms import SmsOutcome, SmsProvider, SmsRequest, SmsResult
from notifications.sms.fallback import audit_sms
from notifications.sms.metrics import SMS_MESSAGES

log = get_logger(__name__)

RETRY_MAX_SECONDS = 900.0


@dataclass(frozen=True)
class ClaimedSms:
    id: int
    notification_id: uuid.UUID
    user_id: uuid.UUID
    unit_id: uuid.UUID | None
    reason: str
    attempts: int
    phone_enc: bytes | None


LEASE_MARGIN_SECONDS = 30.0


def waves(count: int) -> int:
    """Rounds of ``sms_send_concurrency`` requests that ``count`` messages take."""
    return -(-count // get_settings().sms_send_concurrency)


def lease(count: int) -> dt.timedelta:
    """Long enough to send ``count`` messages even if every request takes the gateway's whole
    timeout. A fixed lease (two timeouts and 30 s) was shorter than a default claim of 500 at 10
    at a time against a slow gateway (50 rounds): the next minute's sweep took the rows still
    being sent and sent them again."""
    seconds = waves(count) * get_settings().sms_timeout_seconds + LEASE_MARGIN_SECONDS
    return dt.timedelta(seconds=seconds)


async def claim(session: AsyncSession, *, limit: int, now: dt.datetime) -> list[ClaimedSms]:
    rows = (
        await session.execute(
            text(
                """
                WITH due AS (
                    SELECT id FROM sms_messages
                    WHERE (status IN ('queued', 'retrying') AND next_attempt_at <= :now)
                       OR (status = 'sending' AND claimed_until < :now)
                    ORDER BY next_attempt_at
                    LIMIT :limit
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE sms_messages s
                SET status = 'sending', attempts = s.attempts + 1, claimed_until = :until, updated_at = :now
                FROM due, users u
                WHERE s.id = due.id AND u.id = s.user_id
                RETURNING s.id, s.notification_id, s.user_id, s.unit_id, s.reason, s.attempts, u.phone_enc
                """
            ),
            {"now": now, "until": now + lease(limit), "limit": limit},
        )
    ).all()
    return [
        ClaimedSms(
            id=row.id,
            notification_id=row.notification_id,
            user_id=row.user_id,
            unit_id=row.unit_id,
            reason=row.reason,
            attempts=row.attempts,
            phone_enc=row.phone_enc,
        )
        for row in rows
    ]


async def send_claimed(
    provider: SmsProvider, claimed: list[ClaimedSms]
) -> list[tuple[ClaimedSms, SmsResult]]:
    """The text is the fixed template: no title, body or task detail ever goes by SMS (D-17)."""
    settings = get_settings()
    slots = asyncio.Semaphore(settings.sms_send_concurrency)

    async def one(sms: ClaimedSms) -> tuple[ClaimedSms, SmsResult]:
        if sms.attempts > settings.sms_max_attempts:
            return sms, SmsResult(SmsOutcome.FAILED, error_code="attempts_exhausted")
        if sms.phone_enc is None:  # the number was removed after the decision
            return sms, SmsResult(SmsOutcome.FAILED, error_code="no_phone")
        try:
            phone = decrypt_text(sms.phone_enc)
        except ValueError:
            return sms, SmsResult(SmsOutcome.FAILED, error_code="phone_undecryptable")
        request = SmsRequest(
            to=phone,
            text=settings.sms_message_template,
            sender=settings.sms_sender_name,
            reference=f"chuong-sms-{sms.id}",
        )
        async with slots:
            try:
                return sms, await provider.send(request)
            except Exception as exc:
                # A gateway client answers per message; one that raises instead must not lose
                # the answers of the others (already paid for) with the whole run. As a retry it
                # is written, and the gateway deduplicates the resend by its reference.
                log.exception("sms_send_raised", sms_id=str(sms.id), error=type(exc).__name__)
                return sms, SmsResult(SmsOutcome.RETRY, error_code=f"error:{type(exc).__name__}"[:64])

    return list(await asyncio.gather(*(one(sms) for sms in claimed)))


@dataclass
class SendSummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    # (status, reason) → rows written: counted in the metrics by the caller once the write has
    # committed, so a write tried again after a transient failure is not counted twice.
    written: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count_in_metrics(self) -> None:
        for (status, reason), rows in self.written.items():
            SMS_MESSAGES.labels(status=status, reason=reason).inc(rows)


async def record(
    session: AsyncSession,
    *,
    results: list[tuple[ClaimedSms, SmsResult]],
    provider_name: str,
    now: dt.datetime,
) -> SendSummary:
    settings = get_settings()
    summary = SendSummary()
    for sms, result in results:
        values: dict[str, object] = {
            "id": sms.id,
            "attempts": sms.attempts,
            "now": now,
            "provider": provider_name,
            "code": result.error_code,
            "message_id": result.message_id,
        }
        if result.outcome is SmsOutcome.ACCEPTED:
            status, next_at = "sent", None
        elif result.outcome is SmsOutcome.RETRY and sms.attempts < settings.sms_max_attempts:
            status = "retrying"
            delay = min(settings.sms_retry_base_seconds * 2 ** (sms.attempts - 1), RETRY_MAX_SECONDS)
            next_at = now + dt.timedelta(seconds=delay)
        else:
            status, next_at = "failed", None
        updated = (
            await session.execute(
                text(
                    """
                    UPDATE sms_messages
                    SET status = :status, next_attempt_at = :next_at, claimed_until = NULL,
                        error_code = :code, provider = :provider, provider_message_id = :message_id,
                        sent_at = :sent_at,
                        updated_at = :now
                    WHERE id = :id AND status = 'sending' AND attempts = :attempts
                    """
                ),
                {
                    **values,
                    "status": status,
                    "next_at": next_at,
                    "sent_at": now if status == "sent" else None,
                },
            )
        ).rowcount  # type: ignore[attr-defined]
        if not updated:  # fenced: a newer claim owns the row now
            continue
        summary.written[(status, sms.reason)] += 1
        if status == "retrying":
            summary.retrying += 1
            continue
        if status == "sent":
            summary.sent += 1
        else:
            summary.failed += 1
            log.warning("sms_failed", sms_id=sms.id, error_code=result.error_code, attempts=sms.attempts)
        audit_sms(
            session,
            sms.id,
            sms.notification_id,
            sms.user_id,
            sms.unit_id,
            sms.reason,
            status,
            result.error_code,
        )
    return summary
