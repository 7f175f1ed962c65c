"""The tracking app (docs/tracking.md): intake from the tracking system (API clients with the
``tracking:write`` scope), staff and leaders' task lists and counts, confirmations, reminder
preferences and the working calendar's ad-hoc days."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from api.deps import Authenticated, Require, SessionDep, deny, require
from auth.api_clients import ApiScope
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.schemas import Page
from core.types import BoundedDate
from tracking import calendar as tracking_calendar
from tracking import intake, refusal, requests
from tracking import service as tracking
from tracking.rules import get_rules
from tracking.schemas import (
    CalendarDayIn,
    CalendarDayOut,
    DeadlineStatus,
    KpiBatch,
    PreferenceIn,
    PreferenceOut,
    StatusCount,
    TaskBatch,
    TaskOut,
    TaskRefusal,
    UpdateAnswerIn,
    UpdateRequestIn,
    UpdateRequestOut,
    UpsertResult,
)

router = APIRouter(tags=["tracking"])


class ConnectedSystem(Require):
    """Only a connected system (an API client) holding ``tracking:write`` feeds tasks and KPIs:
    staff change tasks in the tracking system itself, which is the system of record."""

    def __init__(self) -> None:
        super().__init__(scope=ApiScope.TRACKING_WRITE.value)
        self.description = f"api client with {ApiScope.TRACKING_WRITE.value}"

    async def check(self, request: Request, principal: Principal) -> None:
        await super().check(request, principal)  # sign-in restrictions and scopes come first
        if principal.api_client is None:
            raise await deny(request, code="api_client_required", message="Only connected systems send tasks")


class CalendarAdmin(Require):
    """System admins keep the deployment-wide calendar (one calendar for every unit)."""

    def __init__(self) -> None:
        super().__init__(Permission.UNITS_WRITE)

    async def check(self, request: Request, principal: Principal) -> None:
        await super().check(request, principal)
        if not principal.sees_all_units:
            raise await deny(
                request, code="permission_denied", message="Only system admins edit the calendar"
            )


Writer = Depends(ConnectedSystem())
Reader = require(Permission.TASKS_READ)


@router.put("/tasks", response_model=UpsertResult)
async def upsert_tasks(body: TaskBatch, session: SessionDep, principal: Principal = Writer) -> UpsertResult:
    """Bulk, idempotent upsert by task code. Records whose ``version`` is not newer than the stored
    one are left alone and listed in ``ignored``."""
    calendar = await tracking_calendar.load_calendar(session)
    return await intake.upsert_tasks(session, principal=principal, tasks=body.tasks, calendar=calendar)


@router.put("/kpis", response_model=UpsertResult)
async def upsert_kpis(body: KpiBatch, session: SessionDep, principal: Principal = Writer) -> UpsertResult:
    return await intake.upsert_kpis(session, principal=principal, kpis=body.kpis)


@router.get("/tasks", response_model=Page[TaskOut])
async def list_tasks(
    session: SessionDep,
    principal: Principal = Reader,
    scope: tracking.Scope = "mine",
    deadline_status: DeadlineStatus | None = None,
    group_code: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    unit_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Page[TaskOut]:
    """``scope=mine``: the tasks you are responsible for; ``scope=units``: every task of your unit
    subtree (a leader's fields, D-16), led or co-operated. Ordered by deadline."""
    now, rules = utcnow(), get_rules()
    calendar = await tracking_calendar.load_calendar(session)
    filters = tracking.TaskFilters(
        scope=scope,
        deadline_status=deadline_status,
        group_code=group_code,
        unit_id=unit_id,
        limit=limit,
        cursor=cursor,
    )
    tasks, next_cursor = await tracking.list_tasks(
        session, principal=principal, filters=filters, now=now, rules=rules
    )
    return Page[TaskOut](
        items=[tracking.task_out(t, now=now, rules=rules, calendar=calendar) for t in tasks],
        next_cursor=next_cursor,
    )


@router.get("/tasks/counts", response_model=list[StatusCount])
async def task_counts(
    session: SessionDep,
    principal: Principal = require(Permission.DASHBOARD_READ),
    group_code: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[StatusCount]:
    return await tracking.counts(
        session, principal=principal, now=utcnow(), rules=get_rules(), group_code=group_code
    )


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(task_id: uuid.UUID, session: SessionDep, principal: Principal = Reader) -> TaskOut:
    task = await tracking.get_task(session, principal=principal, task_id=task_id)
    calendar = await tracking_calendar.load_calendar(session)
    return tracking.task_out(task, now=utcnow(), rules=get_rules(), calendar=calendar)


@router.post("/tasks/{task_id}/confirm", response_model=TaskOut)
async def confirm_task(
    task_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.TASKS_WRITE)
) -> TaskOut:
    """Confirm receipt of a newly assigned task (D-14): stops the 8-working-hour reminders."""
    now = utcnow()
    task = await tracking.confirm(session, principal=principal, task_id=task_id, now=now)
    calendar = await tracking_calendar.load_calendar(session)
    return tracking.task_out(task, now=now, rules=get_rules(), calendar=calendar)


@router.post("/tasks/{task_id}/refuse", response_model=TaskOut)
async def refuse_task(
    task_id: uuid.UUID,
    body: TaskRefusal,
    session: SessionDep,
    principal: Principal = require(Permission.TASKS_WRITE),
) -> TaskOut:
    """The other answer of D-14: the task was wrongly assigned (``wrong_assignment``) or is outside
    the unit's authority (``outside_authority``), with a reason. Ends the confirm window and
    notifies the assigning and standing agencies. 409 once the unit has confirmed or refused."""
    now, rules = utcnow(), get_rules()
    task = await refusal.refuse(
        session, principal=principal, task_id=task_id, body=body, now=now, rules=rules
    )
    calendar = await tracking_calendar.load_calendar(session)
    return tracking.task_out(task, now=now, rules=rules, calendar=calendar)


@router.post(
    "/tasks/{task_id}/requests", response_model=UpdateRequestOut, status_code=status.HTTP_201_CREATED
)
async def ask_for_update(
    task_id: uuid.UUID, body: UpdateRequestIn, session: SessionDep, principal: Principal = Reader
) -> UpdateRequestOut:
    """The standing agency (its ``task_approver`` and ``leader`` accounts) asks the unit in charge
    for an ``update`` or a ``correction`` (D-15), due ``working_days`` working days from today or
    on a named working day ``due_date``. 403 ``not_standing_agency`` for anyone else who sees the
    task, 409 ``task_refused`` when the unit refused it, 422 ``due_date_past`` /
    ``due_date_not_working_day`` / ``due_date_too_far``."""
    now, rules = utcnow(), get_rules()
    calendar = await tracking_calendar.load_calendar(session)
    request = await requests.ask(
        session, principal=principal, task_id=task_id, body=body, now=now, rules=rules, calendar=calendar
    )
    return requests.request_out(request, calendar=calendar)


@router.get("/tasks/{task_id}/requests", response_model=list[UpdateRequestOut])
async def list_update_requests(
    task_id: uuid.UUID, session: SessionDep, principal: Principal = Reader
) -> list[UpdateRequestOut]:
    """A task's update and correction requests with their answers, newest first."""
    found = await requests.list_requests(session, principal=principal, task_id=task_id, rules=get_rules())
    calendar = await tracking_calendar.load_calendar(session)
    return [requests.request_out(r, calendar=calendar) for r in found]


@router.post("/tasks/{task_id}/requests/{request_id}/answer", response_model=UpdateRequestOut)
async def answer_update_request(
    task_id: uuid.UUID,
    request_id: uuid.UUID,
    body: UpdateAnswerIn,
    session: SessionDep,
    principal: Principal = require(Permission.TASKS_WRITE),
) -> UpdateRequestOut:
    """The unit in charge answers once (the people who may confirm the task): 409
    ``request_already_answered`` / ``request_closed`` after that, 403 ``not_lead_unit`` for a
    co-operating unit, 404 for a request of another task or a task out of view."""
    now, rules = utcnow(), get_rules()
    calendar = await tracking_calendar.load_calendar(session)
    request = await requests.answer(
        session,
        principal=principal,
        task_id=task_id,
        request_id=request_id,
        body=body,
        now=now,
        rules=rules,
        calendar=calendar,
    )
    return requests.request_out(request, calendar=calendar)


@router.get("/preferences", response_model=PreferenceOut)
async def get_preferences(
    session: SessionDep, principal: Principal = Depends(Authenticated())
) -> PreferenceOut:
    found = await tracking.get_preferences(session, user_id=principal.user_id)
    return PreferenceOut.model_validate(found)


@router.put("/preferences", response_model=PreferenceOut)
async def put_preferences(
    body: PreferenceIn, session: SessionDep, principal: Principal = Depends(Authenticated())
) -> PreferenceOut:
    """Quiet hours (local time) hold back routine reminders; emergencies still ring."""
    found = await tracking.put_preferences(session, user_id=principal.user_id, body=body, now=utcnow())
    return PreferenceOut.model_validate(found)


@router.get("/calendar", response_model=list[CalendarDayOut])
async def list_calendar(
    session: SessionDep, principal: Principal = Reader, since: BoundedDate | None = None
) -> list[CalendarDayOut]:
    """Ad-hoc days off and worked days on top of the public holidays."""
    return [CalendarDayOut.model_validate(d) for d in await tracking_calendar.list_days(session, since=since)]


@router.put("/calendar", response_model=CalendarDayOut)
async def put_calendar_day(
    body: CalendarDayIn, session: SessionDep, principal: Principal = Depends(CalendarAdmin())
) -> CalendarDayOut:
    return CalendarDayOut.model_validate(await tracking_calendar.put_day(session, body=body))


@router.delete("/calendar/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_calendar_day(
    day: BoundedDate, session: SessionDep, principal: Principal = Depends(CalendarAdmin())
) -> None:
    await tracking_calendar.delete_day(session, day=day)
