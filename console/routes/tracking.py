"""Tracking for leaders (D-12, D-16): tasks per unit by status colour, the filterable task list,
the overdue list, and what was reminded when. The pages call the same services as
``api.routers.tracking`` behind the same permissions — counts need ``dashboard:read``, task lists
and a task need ``tasks:read`` — so visibility (unit subtree, one's own tasks) is theirs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.i18n import _
from console.security import verify_csrf
from console.templating import render
from core.db import utcnow
from core.errors import BadRequest
from tracking import calendar as tracking_calendar
from tracking import history, requests, scope
from tracking import service as tracking
from tracking.models import Task
from tracking.rules import get_rules
from tracking.schemas import TaskOut
from tracking.status import COLOURS

router = APIRouter(prefix="/tracking", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Dashboard = Depends(Require(Permission.DASHBOARD_READ))
Reader = Depends(Require(Permission.TASKS_READ))
STATUSES = tuple(COLOURS)  # on_time, due_soon, overdue, done: the order of the columns
OVERDUE_LIMIT = 100
PAGE_SIZE = 50

# A filter form sends empty fields for "all": parsed by hand, so that "" means no filter.
TextParam = Annotated[str | None, Query(max_length=200)]


def _status(value: str | None) -> str | None:
    if not value:
        return None
    if value not in COLOURS:
        raise BadRequest(_("Unknown deadline status"), code="invalid_status")
    return value


def _unit(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadRequest(_("Unknown unit"), code="invalid_unit") from exc


async def _outs(session: AsyncSession, tasks: list[Task]) -> list[TaskOut]:
    now, rules = utcnow(), get_rules()
    calendar = await tracking_calendar.load_calendar(session)
    return [tracking.task_out(t, now=now, rules=rules, calendar=calendar) for t in tasks]


async def _names(session: AsyncSession, tasks: list[TaskOut], *more: uuid.UUID) -> dict[uuid.UUID, str]:
    ids = {t.lead_unit_id for t in tasks} | {u for t in tasks for u in t.cooperating_unit_ids} | set(more)
    return await history.unit_names(session, unit_ids=ids)


@router.get("")
async def dashboard(
    request: Request,
    session: SessionDep,
    principal: Principal = Dashboard,
    group: TextParam = None,
) -> Response:
    """Counts per lead unit and status (the API's ``/tasks/counts``) and, for those who may read
    tasks, the overdue ones of their subtree."""
    group_code = group or None
    counts = await tracking.counts(
        session, principal=principal, now=utcnow(), rules=get_rules(), group_code=group_code
    )
    table: dict[uuid.UUID, dict[str, int]] = {}
    for c in counts:
        table.setdefault(c.unit_id, dict.fromkeys(STATUSES, 0))[c.deadline_status] = c.count
    totals = {s: sum(row[s] for row in table.values()) for s in STATUSES}
    overdue: list[TaskOut] = []
    more_overdue = False
    if principal.has(Permission.TASKS_READ):
        filters = tracking.TaskFilters(
            scope="units", deadline_status="overdue", group_code=group_code, limit=OVERDUE_LIMIT
        )
        tasks, cursor = await tracking.list_tasks(
            session, principal=principal, filters=filters, now=utcnow(), rules=get_rules()
        )
        overdue, more_overdue = await _outs(session, tasks), cursor is not None
    names = await _names(session, overdue, *table)
    rows = sorted(table.items(), key=lambda item: names.get(item[0], ""))
    context = {
        "rows": rows,
        "totals": totals,
        "names": names,
        "statuses": STATUSES,
        "colours": COLOURS,
        "overdue": overdue,
        "more_overdue": more_overdue,
        "group": group_code or "",
    }
    return render(request, "tracking/dashboard.html", context, principal=principal)


@router.get("/tasks")
async def task_list(
    request: Request,
    session: SessionDep,
    principal: Principal = Reader,
    status: TextParam = None,
    unit: TextParam = None,
    group: TextParam = None,
    mine: TextParam = None,
    cursor: TextParam = None,
) -> Response:
    """The API's ``GET /tasks`` as a page: the subtree's tasks (or one's own), by deadline."""
    filters = tracking.TaskFilters(
        scope="mine" if mine else "units",
        deadline_status=_status(status),
        group_code=group or None,
        unit_id=_unit(unit),
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    tasks, next_cursor = await tracking.list_tasks(
        session, principal=principal, filters=filters, now=utcnow(), rules=get_rules()
    )
    items = await _outs(session, tasks)
    units = await scope.units_in_view(session, principal=principal, limit=500)
    context = {
        "tasks": items,
        "next_cursor": next_cursor,
        "names": await _names(session, items),
        "units": units,
        "statuses": STATUSES,
        "colours": COLOURS,
        "status": filters.deadline_status or "",
        "unit": str(filters.unit_id) if filters.unit_id else "",
        "group": filters.group_code or "",
        "mine": bool(mine),
    }
    return render(request, "tracking/tasks.html", context, principal=principal)


@router.get("/tasks/{task_id}")
async def task_page(
    request: Request, task_id: uuid.UUID, session: SessionDep, principal: Principal = Reader
) -> Response:
    """One task (404 outside the caller's view, as the API), its update and correction requests
    with their answers (D-15), and its reminder ledger."""
    task, reminders = await history.reminders_of_task(session, principal=principal, task_id=task_id)
    (out,) = await _outs(session, [task])
    asked = await requests.requests_of(session, task_id=task.id)
    calendar = await tracking_calendar.load_calendar(session)
    context = {
        "task": out,
        "reminders": reminders,
        "requests": [requests.request_out(r, calendar=calendar) for r in asked],
        "now": utcnow(),
        "people": await requests.people_names(
            session, user_ids={u for r in asked for u in (r.requested_by, r.answered_by) if u is not None}
        ),
        "names": await _names(session, [out]),
        "colours": COLOURS,
    }
    return render(request, "tracking/task.html", context, principal=principal)
