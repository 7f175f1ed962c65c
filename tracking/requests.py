"""Requests for an update or a correction (D-15): the standing agency asks the unit in charge of a
task for an update of its progress or a correction of its report, due on a working day; the unit
answers once. Both are notifications to act on (inbox + push). While a request is open the sweep
reminds the unit before the due day and escalates after it (rule ``request``, tracking/sweep.py);
the answer stops them.

A rejected report (D-15) is the same thing, asked by the tracking system: intake opens a
``correction`` request with ``origin = report_rejected`` whose message is the rejection's reason,
announced by the ``tracking.report_rejected`` event (tracking/events.py), reminded and answered
like any other. The tracking system closes it by sending the report again (submitted, approved,
or rejected anew, which opens a new one).

The tracking system stays the system of record: the progress fields a unit sends with its answer
are kept on the answer for the standing agency to read, not written onto the task (the next
intake would overwrite them)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit, User
from auth.principal import Principal
from core.errors import Conflict, Forbidden, NotFound, Unprocessable
from core.workcalendar import WorkCalendar
from tracking import events, notify, texts
from tracking.agency import AGENCY_ROLES, agency_people, standing_agency_of
from tracking.models import Task, UpdateRequest
from tracking.rules import Rules
from tracking.schemas import UpdateAnswerIn, UpdateRequestIn, UpdateRequestOut
from tracking.scope import leaders_in_charge
from tracking.service import task_to_answer, visible

ASKED = "tracking.update_requested"
ANSWERED = "tracking.update_answered"
# How far ahead an agency may name a due date: a request is a matter of days, not a new deadline.
MAX_DUE_AHEAD = dt.timedelta(days=366)


def request_out(request: UpdateRequest, *, calendar: WorkCalendar) -> UpdateRequestOut:
    return UpdateRequestOut.model_validate(
        {
            **{c: getattr(request, c) for c in UpdateRequestOut.model_fields if hasattr(request, c)},
            "due_at": calendar.day_closes(request.due_date),
        }
    )


def request_link(task_id: uuid.UUID, request_id: uuid.UUID) -> str:
    return f"{notify.task_link(task_id)}/requests/{request_id}"


def due_date_for(body: UpdateRequestIn, *, now: dt.datetime, calendar: WorkCalendar, rules: Rules) -> dt.date:
    """A working day: the one named (today or later, before its close), or n working days on."""
    today = calendar.local(now).date()
    if body.due_date is None:
        return calendar.shift_working_days(today, body.working_days or rules.request_working_days)
    if calendar.day_closes(body.due_date) <= now:
        raise Unprocessable("The due date has passed", code="due_date_past")
    if body.due_date - today > MAX_DUE_AHEAD:
        raise Unprocessable("The due date is more than a year away", code="due_date_too_far")
    if not calendar.is_working_day(body.due_date):
        raise Unprocessable("The due date is not a working day", code="due_date_not_working_day")
    return body.due_date


async def unit_in_charge(session: AsyncSession, *, tasks: Sequence[Any]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Who answers for each task (``id``, ``lead_unit_id``, ``field_id``,
    ``responsible_user_ids``): its responsible people, else the leaders accountable for it (the
    lead unit's and those in charge of its field, tracking/scope.py), as the sweep's
    ``responsible`` target."""
    found = {t.id: list(t.responsible_user_ids) for t in tasks}
    leaderless = [(t.id, t.lead_unit_id, t.field_id) for t in tasks if not t.responsible_user_ids]
    found.update(await leaders_in_charge(session, tasks=leaderless))
    return found


async def _is_standing_agency(session: AsyncSession, principal: Principal, task: Task, rules: Rules) -> bool:
    """The standing agency's task approvers and leaders ask; the same people its escalations reach."""
    if principal.user is None or principal.role is None or principal.role.value not in AGENCY_ROLES:
        return False
    return principal.unit_id == await standing_agency_of(session, task=task, rules=rules)


async def _task_for_agency(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID, rules: Rules, lock: bool
) -> Task:
    """The task if ``principal`` acts for its standing agency; 404 when the caller cannot see it
    at all, 403 when it sees it (its own subtree) but is not the standing agency."""
    query = select(Task).where(Task.id == task_id)
    task = (await session.execute(query)).scalar_one_or_none()
    if task is None or principal.user is None:
        raise NotFound("Task not found")
    if not await _is_standing_agency(session, principal, task, rules):
        seen = (await session.execute(select(Task.id).where(Task.id == task_id, visible(principal)))).first()
        if seen is None:
            raise NotFound("Task not found")
        raise Forbidden("Only the standing agency asks for updates", code="not_standing_agency")
    if lock:
        await session.refresh(task, with_for_update=True)
    return task


async def ask(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    body: UpdateRequestIn,
    now: dt.datetime,
    rules: Rules,
    calendar: WorkCalendar,
) -> UpdateRequest:
    task = await _task_for_agency(session, principal=principal, task_id=task_id, rules=rules, lock=True)
    if task.refused_at is not None:
        # The unit said the task is not its own: the agency reassigns it (D-14) rather than ask.
        raise Conflict("The unit has refused this task; reassign it first", code="task_refused")
    request = UpdateRequest(
        id=uuid.uuid4(),
        task_id=task.id,
        kind=body.kind,
        origin="agency",
        message=body.message,
        requested_by=principal.user_id,
        requested_at=now,
        due_date=due_date_for(body, now=now, calendar=calendar, rules=rules),
        status="open",
        created_at=now,
    )
    session.add(request)
    await session.flush()
    recipients = (await unit_in_charge(session, tasks=[task]))[task.id]
    if recipients:
        message = notify.Message(
            kind=ASKED,
            title=texts.render(f"tracking.update_requested.{body.kind}.title"),
            body=texts.render(
                "tracking.update_requested.detail",
                head=f"{task.code}: {task.name}",
                message=body.message,
                due=request.due_date.strftime("%d/%m/%Y"),
            ),
            recipients=recipients,
            classified=task.classified,
            priority="emergency" if rules.is_emergency(task.priority) else "high",
            data=_data(task, request),
            deep_link=request_link(task.id, request.id),
        )
        await notify.send(session, principal=None, message=message, rules=rules)
    audit.record(
        session,
        action="tracking.request.created",
        object_type="tracking_task",
        object_id=task.id,
        details={
            "code": task.code,
            "request_id": str(request.id),
            "kind": body.kind,
            "origin": "agency",
            "due_date": request.due_date.isoformat(),
            # The message stays on the request; a classified task's stays out of the log.
            "message": None if task.classified else body.message,
            "notified": len(recipients),
        },
    )
    return request


def _data(task: Task, request: UpdateRequest) -> dict[str, str]:
    return {
        "task_id": str(task.id),
        "task_code": task.code,
        "request_id": str(request.id),
        "request_kind": request.kind,
    }


async def answer(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    request_id: uuid.UUID,
    body: UpdateAnswerIn,
    now: dt.datetime,
    rules: Rules,
    calendar: WorkCalendar,
) -> UpdateRequest:
    """The unit's one answer. The task row is locked first (as a confirmation or a refusal locks
    it, tracking/service.py), then the request's: two answers sent together are serialised and
    the second sees the first (409)."""
    task = await task_to_answer(session, principal=principal, task_id=task_id)
    request = (
        await session.execute(
            select(UpdateRequest)
            .where(UpdateRequest.id == request_id, UpdateRequest.task_id == task.id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if request is None:
        raise NotFound("Request not found")
    if request.status == "answered":
        raise Conflict("The request was already answered", code="request_already_answered")
    if request.status == "closed":
        raise Conflict("The tracking system closed this request", code="request_closed")
    if task.classified:
        present = [n for n in ("description", "difficulties", "proposals") if getattr(body, n) is not None]
        if present:
            raise Unprocessable(
                "Classified tasks carry only their status; remove: " + ", ".join(present),
                code="classified_content",
            )
    request.status = "answered"
    request.answered_at = now
    request.answered_by = principal.user_id
    request.answer = body.answer
    request.answer_result_status = body.result_status
    request.answer_description = body.description
    request.answer_difficulties = body.difficulties
    request.answer_proposals = body.proposals
    standing = await standing_agency_of(session, task=task, rules=rules)
    recipients = await agency_people(session, unit_ids=[standing])
    if request.requested_by is not None and request.requested_by not in recipients:
        recipients.append(request.requested_by)
    if recipients:
        unit_name = (
            await session.execute(select(Unit.name).where(Unit.id == task.lead_unit_id))
        ).scalar_one()
        message = notify.Message(
            kind=ANSWERED,
            title=texts.render(f"tracking.update_answered.{request.kind}.title", unit=unit_name),
            body=texts.render(
                "tracking.update_answered.detail", head=f"{task.code}: {task.name}", answer=body.answer
            ),
            recipients=recipients,
            classified=task.classified,
            priority="high",
            data=_data(task, request),
            deep_link=request_link(task.id, request.id),
        )
        await notify.send(session, principal=None, message=message, rules=rules)
    audit.record(
        session,
        action="tracking.request.answered",
        object_type="tracking_task",
        object_id=task.id,
        details={
            "code": task.code,
            "request_id": str(request.id),
            "kind": request.kind,
            "late": now > calendar.day_closes(request.due_date),
            "answer": None if task.classified else body.answer,
            "result_status": body.result_status,
            "notified": len(recipients),
        },
    )
    await session.flush()
    return request


async def list_requests(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID, rules: Rules
) -> list[UpdateRequest]:
    """A task's requests, newest first: for whoever sees the task, and for its standing agency."""
    task = (
        await session.execute(select(Task).where(Task.id == task_id, visible(principal)))
    ).scalar_one_or_none()
    if task is None:
        await _task_for_agency(session, principal=principal, task_id=task_id, rules=rules, lock=False)
    return await requests_of(session, task_id=task_id)


async def requests_of(session: AsyncSession, *, task_id: uuid.UUID) -> list[UpdateRequest]:
    rows = await session.execute(
        select(UpdateRequest)
        .where(UpdateRequest.task_id == task_id)
        .order_by(UpdateRequest.requested_at.desc(), UpdateRequest.id)
    )
    return list(rows.scalars())


async def people_names(session: AsyncSession, *, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Who asked and who answered, by name, for the console's task page."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.full_name, User.username).where(User.id.in_(user_ids)))
    return {row.id: row.full_name or row.username for row in rows}


async def follow_reports(
    session: AsyncSession,
    *,
    changes: Sequence[tuple[dict[str, Any], Any]],
    now: dt.datetime,
    calendar: WorkCalendar,
    rules: Rules,
) -> dict[uuid.UUID, events.Correction]:
    """Intake's side of D-15: a report rejected (anew) opens a correction request, closing the
    one it replaces; a report sent again (submitted or approved) closes the open one. Returns the
    new requests by task, for the ``tracking.report_rejected`` event to announce."""
    rejected = [(row, before) for row, before in changes if events.report_rejected_now(row, before)]
    settled = [
        row["id"]
        for row, before in changes
        if before is not None and before.report_status == "rejected" and row["report_status"] != "rejected"
    ]
    closing = settled + [row["id"] for row, _ in rejected]
    if closing:
        await session.execute(
            update(UpdateRequest)
            .where(
                UpdateRequest.task_id.in_(closing),
                UpdateRequest.origin == "report_rejected",
                UpdateRequest.status == "open",
            )
            .values(status="closed", closed_at=now)
            .execution_options(synchronize_session=False)
        )
    if not rejected:
        return {}
    due = calendar.shift_working_days(calendar.local(now).date(), rules.request_working_days)
    people = await unit_in_charge(session, tasks=[_Row(row) for row, _ in rejected])
    found: dict[uuid.UUID, events.Correction] = {}
    for row, _ in rejected:
        request = UpdateRequest(
            id=uuid.uuid4(),
            task_id=row["id"],
            kind="correction",
            origin="report_rejected",
            message=row["report_note"] or "",
            requested_by=None,
            requested_at=now,
            due_date=due,
            status="open",
            created_at=now,
        )
        session.add(request)
        found[row["id"]] = events.Correction(request_id=request.id, due=due, recipients=people[row["id"]])
        audit.record(
            session,
            action="tracking.request.created",
            object_type="tracking_task",
            object_id=row["id"],
            details={
                "code": row["code"],
                "request_id": str(request.id),
                "kind": "correction",
                "origin": "report_rejected",
                "due_date": due.isoformat(),
            },
        )
    await session.flush()
    return found


class _Row:
    """An intake row (a dict) seen as a task by ``unit_in_charge``."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.id: uuid.UUID = row["id"]
        self.lead_unit_id: uuid.UUID = row["lead_unit_id"]
        self.responsible_user_ids: list[uuid.UUID] = row["responsible_user_ids"]
        self.field_id: uuid.UUID | None = row["field_id"]
