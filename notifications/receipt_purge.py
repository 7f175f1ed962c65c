"""Readers' receipts past their retention (``CHUONG_RETENTION_RECEIPTS_DAYS``): summed onto
their notification, then deleted, a bounded batch per transaction (notifications/retention.py).

The sum and the delete are one statement, so a receipt is counted exactly once whatever stops
the purge between batches; ``stats.receipt_counts`` adds the sums to the receipts still there. The
same statement adds them per reader language to the notification's language summary
(notifications/language_summary.py), which is why only notifications already summarised are
purged. A notification is marked ``receipts_purged_at`` once none of its receipts is left; a
receipt that arrives later (an app reporting a year-old push) is counted live and goes with its
notification.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from core.after_commit import committing
from core.db import allow_long_statements
from notifications.language_summary import RECEIPT_LANGUAGE_SQL
from notifications.models import Notification, Receipt
from notifications.states import FINAL_STATUSES

# Notifications one purge transaction looks at; a broadcast may have millions of receipts, which
# then take several batches of the same notifications.
_NOTIFICATIONS = 50

_SUM_AND_DELETE = text(
    f"""
    WITH gone AS (
        DELETE FROM receipts r
         WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM receipts WHERE notification_id = ANY(:ids) LIMIT :batch))
        RETURNING notification_id, received_at, opened_at, {RECEIPT_LANGUAGE_SQL} AS language
    ),
    by_language AS (
        INSERT INTO notification_languages AS l (notification_id, language, received, opened)
        SELECT notification_id, language, count(received_at), count(opened_at)
          FROM gone GROUP BY notification_id, language
        ON CONFLICT (notification_id, language) DO UPDATE
           SET received = l.received + excluded.received, opened = l.opened + excluded.opened
    ),
    sums AS (
        SELECT notification_id, count(received_at) AS received, count(opened_at) AS opened,
               count(*) AS rows
          FROM gone GROUP BY notification_id
    ),
    summed AS (
        UPDATE notifications n
           SET receipts_received = coalesce(n.receipts_received, 0) + s.received,
               receipts_opened = coalesce(n.receipts_opened, 0) + s.opened
          FROM sums s
         WHERE n.id = s.notification_id
        RETURNING n.id
    )
    SELECT coalesce(sum(rows), 0) AS removed, (SELECT count(*) FROM summed) AS notifications FROM sums
    """  # noqa: S608 - a fixed fragment, every value a bind parameter
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def purge_batch(cutoff: dt.datetime, batch: int) -> int:
    """Sum and delete up to ``batch`` receipts of finished notifications created before
    ``cutoff``, in one transaction of its own. Returns how many receipts."""
    async with committing() as session:
        await allow_long_statements(session, seconds=120)
        ids = (
            await session.scalars(
                select(Notification.id)
                .where(
                    Notification.receipts_purged_at.is_(None),
                    # Its summary exists, so the receipts' languages have somewhere to go.
                    Notification.languages_summarized_at.is_not(None),
                    Notification.created_at < cutoff,
                    Notification.status.in_(FINAL_STATUSES),
                )
                .order_by(Notification.created_at)
                .limit(_NOTIFICATIONS)
            )
        ).all()
        if not ids:
            return 0
        removed = int(
            (await session.execute(_SUM_AND_DELETE, {"ids": list(ids), "batch": batch})).one().removed
        )
        if removed < batch:
            # None of these notifications has a receipt left: mark them done (ctid rows that a
            # concurrent receipt update moved are caught by the NOT EXISTS and wait a night).
            still = select(Receipt.notification_id).where(Receipt.notification_id == Notification.id).exists()
            await session.execute(
                update(Notification)
                .where(Notification.id.in_(ids), ~still)
                .values(receipts_purged_at=func.now())
            )
    return removed if removed >= batch or len(ids) < _NOTIFICATIONS else batch
