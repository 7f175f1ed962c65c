"""SMS rows past their retention (``CHUONG_RETENTION_SMS_DAYS``), a bounded batch per transaction
(notifications/retention.py): rows that reached an end (sent, failed, capped, no phone) and the
daily cap counters of days before the cutoff. A row still queued, sending or retrying stays
whatever its age: it is work, not a record."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select

from core.after_commit import committing
from core.workcalendar import TIMEZONE
from notifications.sms.models import SmsDailyCount, SmsMessage

ENDED = ("sent", "failed", "capped", "no_phone")


async def purge_batch(cutoff: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` ended SMS rows created before ``cutoff`` (oldest first) and the cap
    counters of local days before it, in one transaction of its own. Returns the SMS rows."""
    async with committing() as session:
        doomed = (
            select(SmsMessage.id)
            .where(SmsMessage.created_at < cutoff, SmsMessage.status.in_(ENDED))
            .order_by(SmsMessage.created_at)
            .limit(batch)
        )
        result = await session.execute(delete(SmsMessage).where(SmsMessage.id.in_(doomed)))
        removed = cast(CursorResult[Any], result).rowcount
        # A few rows a day (one per user, unit and "all" that sent one): no batching needed.
        await session.execute(
            delete(SmsDailyCount).where(SmsDailyCount.day < cutoff.astimezone(TIMEZONE).date())
        )
    return removed
