"""Which (notification, user) pairs get an SMS, decided set-based and at most once.

SMS is sent only when (D-31):
  (a) the notification's priority is ``emergency`` and, ``sms_ack_window_minutes`` after it was
      created, none of the user's devices reported it received or opened (``receipts``) and the
      user has not read it in the inbox; or
  (b) degraded mode is on (push providers failing) and the notification is ``emergency`` or
      ``high``, after the shorter ``sms_degraded_ack_window_minutes``.
Never for normal priority, for routine kinds (``sms_never_kinds``), for broadcasts (all readers,
topics) or for anonymous readers: only signed-in users with an inbox row are candidates.

One ``INSERT … SELECT … ON CONFLICT DO NOTHING`` writes the ledger rows; the UNIQUE
(notification, user) constraint makes overlapping sweeps and several workers decide each pair
once. In the same transaction each new row either reserves today's caps (→ ``queued``) or is
closed as ``capped`` / ``no_phone``, so nothing decided is ever reconsidered.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.config import get_settings
from core.logging import get_logger
from notifications.sms import caps
from notifications.sms.degraded import get_state
from notifications.sms.metrics import SMS_MESSAGES

log = get_logger(__name__)

REASON_EMERGENCY = "emergency_unacknowledged"
REASON_DEGRADED = "degraded_mode"

_CANDIDATES = """
WITH picked AS (
    SELECT n.id AS notification_id, u.id AS user_id, u.unit_id,
           CASE WHEN n.priority = 'emergency' AND n.created_at <= :ack_cutoff
                THEN 'emergency_unacknowledged' ELSE 'degraded_mode' END AS reason,
           n.created_at
    FROM notifications n
    JOIN inbox_items i ON i.notification_id = n.id AND i.read_at IS NULL
    JOIN users u ON u.id = i.reader_id AND u.is_active
    WHERE n.priority IN ('emergency', 'high')
      AND n.created_at >= :lookback
      AND n.status <> 'cancelled'
      AND (
            (n.priority = 'emergency' AND n.created_at <= :ack_cutoff)
         OR (:degraded AND n.created_at <= :degraded_cutoff)
      )
      -- targeted only: broadcasts (all readers, topics) never go by SMS (inbox.models.BROADCAST_SQL)
      AND NOT ((n.audience @> '{"all": true}'::jsonb) OR ((n.audience -> 'topics') <> '[]'::jsonb))
      AND NOT (n.kind LIKE ANY (:never_kinds))
      AND NOT EXISTS (
            SELECT 1 FROM receipts r
            WHERE r.notification_id = n.id AND r.reader_id = u.id
              AND (r.received_at IS NOT NULL OR r.opened_at IS NOT NULL))
      AND NOT EXISTS (
            SELECT 1 FROM sms_messages s WHERE s.notification_id = n.id AND s.user_id = u.id)
    ORDER BY n.created_at, u.id
    LIMIT :batch
)
INSERT INTO sms_messages (notification_id, user_id, unit_id, reason, status, attempts,
                          next_attempt_at, created_at, updated_at)
SELECT notification_id, user_id, unit_id, reason, 'queued', 0,
       CAST(:now AS timestamptz), CAST(:now AS timestamptz), CAST(:now AS timestamptz) FROM picked
ON CONFLICT ON CONSTRAINT uq_sms_messages_notification_user DO NOTHING
RETURNING id, notification_id, user_id, unit_id, reason
"""


@dataclass
class SweepResult:
    queued: int = 0
    capped: int = 0
    no_phone: int = 0
    # (status, reason) → rows closed as capped / no_phone: counted in the metrics by the caller
    # once the decision's transaction has committed (as ``sender.SendSummary.written``). Counted
    # here, a commit that failed and the next run's redo of the same decisions counted them twice.
    written: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def decided(self) -> int:
        return self.queued + self.capped + self.no_phone

    def count_in_metrics(self) -> None:
        for (status, reason), rows in self.written.items():
            SMS_MESSAGES.labels(status=status, reason=reason).inc(rows)


def _like_prefixes(kinds: list[str]) -> list[str]:
    escaped = [kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for kind in kinds]
    return [f"{kind}%" for kind in escaped] or ["\x00never%"]


async def decide(session: AsyncSession, *, now: dt.datetime) -> SweepResult:
    """Write the next batch of ledger rows. Call until ``decided < sms_sweep_batch``; once the
    session's transaction has committed, call ``count_in_metrics()`` on the result."""
    settings = get_settings()
    degraded = await get_state(session)
    statement = text(_CANDIDATES)
    rows = (
        await session.execute(
            statement,
            {
                "now": now,
                "ack_cutoff": now - dt.timedelta(minutes=settings.sms_ack_window_minutes),
                "degraded": degraded.enabled,
                "degraded_cutoff": now - dt.timedelta(minutes=settings.sms_degraded_ack_window_minutes),
                "lookback": now - dt.timedelta(minutes=settings.sms_lookback_minutes),
                "never_kinds": _like_prefixes(settings.sms_never_kinds),
                "batch": settings.sms_sweep_batch,
            },
        )
    ).all()
    result = SweepResult()
    if not rows:
        return result
    with_phone = set(
        (
            await session.execute(
                text("SELECT id FROM users WHERE id = ANY(:ids) AND phone_enc IS NOT NULL"),
                {"ids": [row.user_id for row in rows]},
            )
        ).scalars()
    )
    for row in rows:
        if row.user_id not in with_phone:
            blocked: str | None = "no_phone"
        else:
            blocked = await caps.reserve(session, user_id=row.user_id, unit_id=row.unit_id, now=now)
        if blocked is None:
            result.queued += 1
            continue
        status = "no_phone" if blocked == "no_phone" else "capped"
        await session.execute(
            text(
                "UPDATE sms_messages SET status = :status, error_code = :code, next_attempt_at = NULL"
                " WHERE id = :id"
            ),
            {"status": status, "code": blocked, "id": row.id},
        )
        if status == "capped":
            result.capped += 1
        else:
            result.no_phone += 1
        result.written[(status, row.reason)] += 1
        audit_sms(session, row.id, row.notification_id, row.user_id, row.unit_id, row.reason, status, blocked)
    if result.capped or result.no_phone:
        log.warning("sms_suppressed", capped=result.capped, no_phone=result.no_phone)
    return result


def audit_sms(
    session: AsyncSession,
    sms_id: int,
    notification_id: uuid.UUID,
    user_id: uuid.UUID,
    unit_id: uuid.UUID | None,
    reason: str,
    status: str,
    code: str | None,
) -> None:
    audit.record(
        session,
        action=f"sms.{status}",
        object_type="notification",
        object_id=notification_id,
        outcome="success" if status == "sent" else "failure",
        details={"sms_id": sms_id, "user_id": str(user_id), "reason": reason, "code": code},
        unit_id=unit_id,
    )
