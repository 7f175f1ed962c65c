"""Receipts: the app reports that a notification was ``received`` and ``opened``. They feed
the notification's stats and, later, the SMS fallback (D-31). Not audited: telemetry about the
reader's own copy, not shared data."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox import service
from inbox.readers import Reader
from notifications.language_summary import receipt_language
from notifications.models import Receipt


async def record_receipt(
    session: AsyncSession, *, reader: Reader, notification_id: uuid.UUID, event: str, now: dt.datetime
) -> Receipt:
    """``received`` or ``opened`` (which implies received, and marks the item read). The first
    report of each wins, so retries and duplicates change nothing."""
    await service.entry_of(session, reader, notification_id)  # 404 unless it is the reader's
    opened = now if event == "opened" else None
    statement = insert(Receipt).values(
        notification_id=notification_id,
        reader_id=reader.id,
        device_id=reader.device_id,
        received_at=now,
        opened_at=opened,
        # Fixed at the first write, for the reports (notifications/language_summary.py).
        language=receipt_language(notification_id, reader.device_id),
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["notification_id", "reader_id"],
            set_={
                "received_at": func.coalesce(Receipt.received_at, statement.excluded.received_at),
                "opened_at": func.coalesce(Receipt.opened_at, statement.excluded.opened_at),
                "language": func.coalesce(Receipt.language, statement.excluded.language),
            },
        )
    )
    if event == "opened":
        await service.mark_read(session, reader=reader, notification_id=notification_id, now=now)
    receipt = (
        await session.execute(
            select(Receipt)
            .where(Receipt.notification_id == notification_id, Receipt.reader_id == reader.id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return receipt
