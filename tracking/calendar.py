"""The working calendar with this deployment's ad-hoc days (a table), read fresh by every sweep
and request: a day off announced this morning applies to the very next sweep."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.errors import NotFound
from core.workcalendar import WorkCalendar
from tracking.models import CalendarDay
from tracking.schemas import CalendarDayIn


async def load_calendar(session: AsyncSession) -> WorkCalendar:
    rows = (await session.execute(select(CalendarDay.day, CalendarDay.kind))).all()
    return WorkCalendar(
        days_off=[row.day for row in rows if row.kind == "off"],
        working_days=[row.day for row in rows if row.kind == "work"],
    )


async def list_days(
    session: AsyncSession, *, since: dt.date | None = None, until: dt.date | None = None
) -> list[CalendarDay]:
    """The ad-hoc days from ``since`` to ``until`` (both included, either open)."""
    query = select(CalendarDay).order_by(CalendarDay.day)
    if since is not None:
        query = query.where(CalendarDay.day >= since)
    if until is not None:
        query = query.where(CalendarDay.day <= until)
    return list((await session.execute(query)).scalars())


async def put_day(session: AsyncSession, *, body: CalendarDayIn) -> CalendarDay:
    values = {"day": body.day, "kind": body.kind, "note": body.note}
    await session.execute(
        insert(CalendarDay)
        .values(**values)
        .on_conflict_do_update(index_elements=[CalendarDay.day], set_={"kind": body.kind, "note": body.note})
    )
    audit.record(
        session,
        action="tracking.calendar_day.set",
        object_type="calendar_day",
        object_id=body.day.isoformat(),
        details={"kind": body.kind},
    )
    day = await session.get(CalendarDay, body.day, populate_existing=True)
    assert day is not None
    return day


async def delete_day(session: AsyncSession, *, day: dt.date) -> None:
    result = await session.execute(
        delete(CalendarDay).where(CalendarDay.day == day).returning(CalendarDay.day)
    )
    if result.scalar_one_or_none() is None:
        raise NotFound("No ad-hoc calendar entry for that day")
    audit.record(
        session, action="tracking.calendar_day.deleted", object_type="calendar_day", object_id=day.isoformat()
    )
