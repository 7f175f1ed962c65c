"""Daily SMS caps per user, per unit and overall, reserved atomically in PostgreSQL.

Each scope has one counter row per local day. The conditional upsert below increments a row
only while it is under its cap; the row lock it takes makes concurrent reservations queue on
the same row, so a burst can never overshoot. If one scope is full, the scopes already taken
are given back, so a refused SMS consumes nothing. Rows are always locked in the order
user → unit → all, so two reservations cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import get_settings

VN_TIME = dt.timezone(dt.timedelta(hours=7), "Asia/Ho_Chi_Minh")  # no daylight saving (D-50)
ALL_SCOPE_ID = uuid.UUID(int=0)

_RESERVE = text(
    """
    INSERT INTO sms_daily_counts (day, scope, scope_id, count) VALUES (:day, :scope, :scope_id, 1)
    ON CONFLICT (day, scope, scope_id) DO UPDATE SET count = sms_daily_counts.count + 1
    WHERE sms_daily_counts.count < :cap
    RETURNING count
    """
)
_RELEASE = text(
    "UPDATE sms_daily_counts SET count = count - 1"
    " WHERE day = :day AND scope = :scope AND scope_id = :scope_id"
)


def local_day(now: dt.datetime) -> dt.date:
    return now.astimezone(VN_TIME).date()


async def reserve(
    session: AsyncSession, *, user_id: uuid.UUID, unit_id: uuid.UUID | None, now: dt.datetime
) -> str | None:
    """Take one SMS from today's allowance of the user, the unit and the whole service.
    Returns None when reserved, or the name of the first cap that is full."""
    settings = get_settings()
    scopes: list[tuple[str, uuid.UUID, int]] = [("user", user_id, settings.sms_daily_cap_per_user)]
    if unit_id is not None:
        scopes.append(("unit", unit_id, settings.sms_daily_cap_per_unit))
    scopes.append(("all", ALL_SCOPE_ID, settings.sms_daily_cap_total))
    day = local_day(now)
    taken: list[tuple[str, uuid.UUID]] = []
    for scope, scope_id, cap in scopes:
        counted = None
        if cap > 0:
            counted = (
                await session.execute(
                    _RESERVE, {"day": day, "scope": scope, "scope_id": scope_id, "cap": cap}
                )
            ).scalar_one_or_none()
        if counted is None:
            # Give back what this call took. Not a savepoint: rolling one back also drops the
            # audit rows buffered on the session (auth/audit/writer.py listens to after_rollback).
            # Our transaction still holds those rows' locks, so nobody saw the extra count.
            for taken_scope, taken_id in taken:
                await session.execute(_RELEASE, {"day": day, "scope": taken_scope, "scope_id": taken_id})
            return f"cap_{scope}"
        taken.append((scope, scope_id))
    return None


async def used_today(session: AsyncSession, *, now: dt.datetime) -> int:
    return int(
        (
            await session.execute(
                text(
                    "SELECT count FROM sms_daily_counts WHERE day = :day AND scope = 'all' AND scope_id = :id"
                ),
                {"day": local_day(now), "id": ALL_SCOPE_ID},
            )
        ).scalar_one_or_none()
        or 0
    )
