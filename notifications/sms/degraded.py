"""The operator's degraded-mode switch (D-31 "when the system is disrupted"). Off by default;
switched on by a system admin with a fresh two-factor step-up when push providers fail."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.logging import get_logger
from notifications.sms.metrics import DEGRADED_MODE
from notifications.sms.models import DegradedMode

log = get_logger(__name__)


@dataclass(frozen=True)
class DegradedState:
    enabled: bool
    reason: str | None
    changed_by_id: uuid.UUID | None
    changed_at: dt.datetime | None
    enabled_at: dt.datetime | None


OFF = DegradedState(enabled=False, reason=None, changed_by_id=None, changed_at=None, enabled_at=None)


async def get_state(session: AsyncSession) -> DegradedState:
    row = (await session.execute(select(DegradedMode).where(DegradedMode.id == 1))).scalar_one_or_none()
    state = OFF if row is None else _state(row)
    DEGRADED_MODE.set(1 if state.enabled else 0)
    return state


async def set_state(
    session: AsyncSession, *, enabled: bool, reason: str | None, actor_id: uuid.UUID, now: dt.datetime
) -> DegradedState:
    before = await get_state(session)
    statement = insert(DegradedMode).values(
        id=1,
        enabled=enabled,
        reason=reason,
        changed_by_id=actor_id,
        changed_at=now,
        enabled_at=now if enabled else None,
    )
    # Switching on twice keeps the first switch-on time.
    enabled_at = before.enabled_at if (enabled and before.enabled) else statement.excluded.enabled_at
    row = (
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["id"],
                set_={
                    "enabled": statement.excluded.enabled,
                    "reason": statement.excluded.reason,
                    "changed_by_id": statement.excluded.changed_by_id,
                    "changed_at": statement.excluded.changed_at,
                    "enabled_at": enabled_at,
                },
            )
            .returning(DegradedMode)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    state = _state(row)
    audit.record(
        session,
        action="sms.degraded_mode.on" if enabled else "sms.degraded_mode.off",
        object_type="sms_degraded_mode",
        object_id=1,
        details={"enabled": enabled, "was_enabled": before.enabled, "reason": reason},
    )
    log.warning("sms_degraded_mode_switched", enabled=enabled, reason=reason, actor_id=str(actor_id))
    DEGRADED_MODE.set(1 if enabled else 0)
    return state


def _state(row: DegradedMode) -> DegradedState:
    return DegradedState(
        enabled=row.enabled,
        reason=row.reason,
        changed_by_id=row.changed_by_id,
        changed_at=row.changed_at,
        enabled_at=row.enabled_at,
    )
