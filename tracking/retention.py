"""The reminder ledger's settled rows past their retention (``CHUONG_RETENTION_REMINDERS_DAYS``),
a bounded batch per transaction, run by the nightly purge after notifications/retention.py.

A ledger row is what stops a reminder from being sent twice (tracking/sweep.py inserts ON
CONFLICT DO NOTHING), so only rows whose every sweep window has closed may go: the setting's
floor (180 days) is longer than the longest window, 60 working days after a deadline. Pending
rows stay whatever their age: they are work, not a record."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select

from core.after_commit import committing
from tracking.models import Reminder


async def purge_batch(cutoff: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` sent or dropped ledger rows created before ``cutoff`` (lowest ids,
    which are the oldest, first: the primary key finds them), in one transaction of its own."""
    async with committing() as session:
        doomed = (
            select(Reminder.id)
            .where(Reminder.created_at < cutoff, Reminder.status != "pending")
            .order_by(Reminder.id)
            .limit(batch)
        )
        result = await session.execute(delete(Reminder).where(Reminder.id.in_(doomed)))
    return cast(CursorResult[Any], result).rowcount
