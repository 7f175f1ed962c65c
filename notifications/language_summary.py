"""Each notification's figures per reader language (``notification_languages``), so that reports
split by language without reading every device's row, and past the deliveries' (30 days) and the
receipts' (365 days) retention.

Two folds, each exact once and only once:

* **Devices** (targeted / sent / invalid / failed): once a notification's sending has ended (a
  final status and no open delivery batch, so no delivery changes any more), ``fold_batch``
  counts its deliveries by language in one statement that also stamps
  ``languages_summarized_at``: the stamp and the rows commit together or not at all, and a
  second fold (a repeated job, two workers) finds the stamp set and adds nothing. What the
  deliveries no longer show (deliveries purged before this existed, devices deleted since, which
  takes their deliveries with them) goes under ``unknown``, as do receipts the purge summed before
  this existed, so every notification's languages add up to its counters. The deliveries purge
  (notifications/outbox.py) and the receipt purge wait for the stamp.
* **Readers** (received / opened): receipts keep arriving for as long as they are kept, so they
  are not folded early. Each receipt carries its language from its first write
  (``receipt_language``), and reports count the kept ones by it (the primary-key range the totals
  already read). The receipt purge (notifications/receipt_purge.py) adds the receipts it deletes
  to the summary in the statement that deletes them, the same statement that sums them onto the
  notification: a receipt is counted live or in the summary, never both, never neither.

Receipts written before the ``language`` column have none: their language is looked up as the
reports did before (the delivery's, else the device's locale, else ``unknown``), only for them
(``RECEIPT_LANGUAGE_SQL``: COALESCE stops at the first value).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ColumnElement, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from core.after_commit import committing
from core.db import allow_long_statements
from devices.models import Device
from notifications.models import Delivery, DeliveryBatch, Notification
from notifications.states import FINAL_STATUSES

UNKNOWN = "unknown"
# Notifications looked at per fold transaction; fewer when they are big (see ``fold_batch``).
_NOTIFICATIONS = 50

# A receipt row ``r``'s language: its own, else (receipts older than the column) its delivery's,
# else its device's locale. The subqueries run only for rows without one.
RECEIPT_LANGUAGE_SQL = """coalesce(
    r.language,
    (SELECT d.language FROM deliveries d WHERE d.notification_id = r.notification_id
        AND d.device_id = r.device_id),
    (SELECT dv.locale FROM devices dv WHERE dv.id = r.device_id),
    'unknown')"""


def receipt_language(notification_id: uuid.UUID, device_id: uuid.UUID | None) -> ColumnElement[str]:
    """A new receipt's language, as the reports count it: the language its device was sent the
    push in, else the device's locale (a receipt from an inbox the push did not go to as a
    push), else ``unknown`` (a signed-in reader's receipt with no device)."""
    if device_id is None:
        return literal(UNKNOWN)
    delivered = select(Delivery.language).where(
        Delivery.notification_id == notification_id, Delivery.device_id == device_id
    )
    locale = select(Device.locale).where(Device.id == device_id)
    return func.coalesce(delivered.scalar_subquery(), locale.scalar_subquery(), UNKNOWN)


# Stamp, count and write in one statement (see the module docstring). Each push's deliveries are
# read through its own index range (the lateral), never by scanning a month of deliveries. The
# stamp's UPDATE takes the notification's row lock: a concurrent fold of the same one waits, then
# finds it stamped and claims nothing. Every figure is added on conflict, though a notification
# has no row before its fold (the receipt purge waits for the stamp).
_FOLD_DEVICES = text(
    """
    WITH claimed AS (
        UPDATE notifications n SET languages_summarized_at = now()
         WHERE n.id = ANY(:ids) AND n.languages_summarized_at IS NULL
           AND n.status IN ('completed', 'expired', 'cancelled')
           AND NOT EXISTS (SELECT 1 FROM delivery_batches b
                            WHERE b.notification_id = n.id AND b.status = 'open')
        RETURNING n.id, n.targeted, n.sent, n.invalid, n.failed,
                  n.deliveries_purged_at IS NOT NULL AS deliveries_gone,
                  coalesce(n.receipts_received, 0) AS received, coalesce(n.receipts_opened, 0) AS opened
    ),
    kept AS (
        SELECT c.id, d.language, d.targeted, d.sent, d.invalid, d.failed
          FROM claimed c CROSS JOIN LATERAL (
               SELECT language, count(*) AS targeted, count(*) FILTER (WHERE status = 'sent') AS sent,
                      count(*) FILTER (WHERE status = 'invalid') AS invalid,
                      count(*) FILTER (WHERE status = 'failed') AS failed
                 FROM deliveries WHERE deliveries.notification_id = c.id GROUP BY language) d
         WHERE NOT c.deliveries_gone
    ),
    shown AS (
        SELECT id, sum(targeted) AS targeted, sum(sent) AS sent, sum(invalid) AS invalid,
               sum(failed) AS failed
          FROM kept GROUP BY id
    ),
    parts AS (
        SELECT id, language, targeted, sent, invalid, failed, 0 AS received, 0 AS opened FROM kept
        UNION ALL
        SELECT c.id, 'unknown',
               greatest(c.targeted - coalesce(s.targeted, 0), 0), greatest(c.sent - coalesce(s.sent, 0), 0),
               greatest(c.invalid - coalesce(s.invalid, 0), 0), greatest(c.failed - coalesce(s.failed, 0), 0),
               c.received, c.opened
          FROM claimed c LEFT JOIN shown s ON s.id = c.id
    ),
    summed AS (
        SELECT id, language, sum(targeted) AS targeted, sum(sent) AS sent, sum(invalid) AS invalid,
               sum(failed) AS failed, sum(received) AS received, sum(opened) AS opened
          FROM parts GROUP BY id, language
        HAVING language <> 'unknown'
            OR sum(targeted) + sum(sent) + sum(invalid) + sum(failed) + sum(received) + sum(opened) > 0
    ),
    written AS (
        INSERT INTO notification_languages AS l
               (notification_id, language, targeted, sent, invalid, failed, received, opened)
        SELECT id, language, targeted, sent, invalid, failed, received, opened FROM summed
        ON CONFLICT (notification_id, language) DO UPDATE
           SET targeted = l.targeted + excluded.targeted, sent = l.sent + excluded.sent,
               invalid = l.invalid + excluded.invalid, failed = l.failed + excluded.failed,
               received = l.received + excluded.received, opened = l.opened + excluded.opened
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM claimed) AS notifications,
           (SELECT coalesce(sum(targeted), 0) FROM kept) AS deliveries
    """
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def fold(session: AsyncSession, *, ids: list[uuid.UUID]) -> tuple[int, int]:
    """Fold the devices of those of ``ids`` whose sending has ended and that have no summary yet,
    in the caller's transaction. Returns (notifications folded, deliveries read)."""
    row = (await session.execute(_FOLD_DEVICES, {"ids": ids})).one()
    return int(row.notifications), int(row.deliveries)


def _ended() -> ColumnElement[bool]:
    still_open = select(DeliveryBatch.id).where(
        DeliveryBatch.notification_id == Notification.id, DeliveryBatch.status == "open"
    )
    return Notification.status.in_(FINAL_STATUSES) & ~still_open.exists()


async def fold_batch(cutoff: dt.datetime, batch: int) -> int:
    """One transaction of folds, oldest notifications first (created before ``cutoff``): as many
    as fit in ``batch`` deliveries by their ``targeted`` counter, at least one (a national
    broadcast's millions of deliveries are read by one statement: a read, with a handful of rows
    written). Returns the deliveries read, at least ``batch`` when more notifications wait (a
    retention step: notifications/retention.py ``drain`` asks again until a call returns less)."""
    async with committing() as session:
        await allow_long_statements(session, seconds=300)
        waiting = (
            await session.execute(
                select(Notification.id, Notification.targeted, Notification.deliveries_purged_at)
                .where(
                    Notification.languages_summarized_at.is_(None), Notification.created_at < cutoff, _ended()
                )
                .order_by(Notification.created_at)
                .limit(_NOTIFICATIONS)
            )
        ).all()
        ids: list[uuid.UUID] = []
        size = 0
        for row in waiting:
            if ids and size + row.targeted > batch:
                break
            ids.append(row.id)
            size += 0 if row.deliveries_purged_at is not None else row.targeted
        if not ids:
            return 0
        _, deliveries = await fold(session, ids=ids)
    more = len(ids) < len(waiting) or len(waiting) == _NOTIFICATIONS
    return max(deliveries, batch) if more else deliveries
