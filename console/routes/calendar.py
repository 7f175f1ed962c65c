"""The working calendar (D-50) for a year: the public holidays, this deployment's ad-hoc days off
and extra working days (a Saturday worked to bridge a holiday), and the working days they leave.
Reading needs ``tasks:read`` and changing the system admin's ``CalendarAdmin`` policy, as on
``/v1/tracking/calendar``; the changes are ``tracking.calendar``'s (audited
``tracking.calendar_day.set`` / ``.deleted``) and apply to the very next sweep and deadline."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import CalendarAdmin, Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.form_errors import FIELDS, describe
from console.forms import see_other
from console.i18n import _, current_language, gettext
from console.security import verify_csrf
from console.templating import render
from core.db import utcnow
from core.errors import BadRequest, Unprocessable
from core.types import EARLIEST_YEAR, LATEST_YEAR, BoundedDate
from core.workcalendar import TIMEZONE, public_holidays
from tracking import calendar as tracking_calendar
from tracking.schemas import CalendarDayIn

router = APIRouter(prefix="/tracking", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.TASKS_READ))
Admin = Depends(CalendarAdmin())
Field = Annotated[str, Form(max_length=2000)]


def _year(value: str) -> int:
    if not value:
        return utcnow().astimezone(TIMEZONE).year
    if not (value.isascii() and value.isdigit() and len(value) == 4) or not (
        EARLIEST_YEAR <= int(value) <= LATEST_YEAR
    ):
        raise BadRequest(
            _("The year must be between %(first)s and %(last)s.")
            % {"first": EARLIEST_YEAR, "last": LATEST_YEAR},
            code="invalid_year",
        )
    return int(value)


async def _calendar_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    year: int,
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    days = await tracking_calendar.list_days(session, since=first, until=last)
    calendar = await tracking_calendar.load_calendar(session)
    adhoc = {d.day: d for d in days}
    working = sum(
        calendar.is_working_day(first + dt.timedelta(days=n)) for n in range((last - first).days + 1)
    )
    return render(
        request,
        "tracking/calendar.html",
        {
            "year": year,
            "years": (year - 1 if year > EARLIEST_YEAR else None, year + 1 if year < LATEST_YEAR else None),
            "holidays": public_holidays(year, language=current_language()),
            "days": days,
            "adhoc": adhoc,
            "working_days": working,
            "can_edit": principal.has(Permission.UNITS_WRITE) and principal.sees_all_units,
            "done": done,
            "error": error,
            "values": values or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/calendar")
async def calendar_page(
    request: Request, session: SessionDep, year: str = "", done: str = "", principal: Principal = Reader
) -> Response:
    return await _calendar_page(request, session, principal, year=_year(year[:8]), done=done)


@router.post("/calendar")
async def put_day(
    request: Request,
    session: SessionDep,
    day: Field,
    kind: Field,
    note: Field = "",
    principal: Principal = Admin,
) -> Response:
    """As ``PUT /v1/tracking/calendar``, with a reason: the day becomes a day off or a working
    day, replacing what was set for it before."""
    values = {"day": day, "kind": kind, "note": note}
    shown_year = _shown_year(day)
    try:
        body = CalendarDayIn.model_validate({"day": day.strip(), "kind": kind, "note": note.strip() or None})
    except ValidationError as exc:
        error = describe(exc)
    else:
        if body.note is None:
            error = gettext("%(field)s is required.") % {"field": gettext(FIELDS["note"])}
        else:
            await tracking_calendar.put_day(session, body=body)
            return see_other(f"/tracking/calendar?year={body.day.year}&done=day_saved")
    return await _calendar_page(
        request, session, principal, year=shown_year, error=error, values=values, status_code=422
    )


def _shown_year(day: str) -> int:
    """The year a refused form goes back to: the typed day's if it is one, else this year."""
    try:
        return _year(day.strip()[:4])
    except BadRequest:
        return _year("")


@router.post("/calendar/{day}/delete")
async def delete_day(
    day: BoundedDate,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    principal: Principal = Admin,
) -> Response:
    """As ``DELETE /v1/tracking/calendar/{day}``, after the box is ticked: the day goes back to
    what the public calendar says."""
    if confirm != "yes":
        raise Unprocessable(_("Tick the box to confirm."), code="confirmation_required")
    await tracking_calendar.delete_day(session, day=day)
    return see_other(f"/tracking/calendar?year={day.year}&done=day_removed")
