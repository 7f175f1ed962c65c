"""What staff and leaders do in the tracking app: list tasks with their deadline status, count
them per unit and status (D-12, D-16), confirm a newly assigned task (D-14), and set their
reminder preferences; refusing a task (the other answer of D-14) is tracking/refusal.py.
Visibility is tracking/scope.py's: one's unit subtree (an inspector's overseen units), the
fields a leader is in charge of, and always the tasks one is responsible for."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit
from auth.principal import Principal
from core.errors import BadRequest, Conflict, Forbidden, NotFound
from core.types import bounded_instant
from core.workcalendar import WorkCalendar
from tracking.models import Preference, Task
from tracking.rules import Rules
from tracking.schemas import PreferenceIn, StatusCount, TaskOut
from tracking.scope import task_scope
from tracking.status import COLOURS, status_of, status_sql

Scope = Literal["mine", "units"]


@dataclass(frozen=True)
class TaskFilters:
    scope: Scope = "mine"
    deadline_status: str | None = None
    group_code: str | None = None
    unit_id: uuid.UUID | None = None
    limit: int = 50
    cursor: str | None = None


def encode_cursor(task: Task) -> str:
    raw = f"{task.deadline.isoformat()}|{task.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, task_id = raw.split("|")
        # Naive, or beyond the years PostgreSQL and the UTC conversion take: not our cursor.
        parsed = bounded_instant(dt.datetime.fromisoformat(stamp))
        return parsed, uuid.UUID(task_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc


def visible(principal: Principal) -> ColumnElement[bool]:
    """The one visibility rule of tasks (tracking/scope.py): unit reach, fields in charge, one's own."""
    return task_scope(principal)


def task_out(task: Task, *, now: dt.datetime, rules: Rules, calendar: WorkCalendar) -> TaskOut:
    status = status_of(task, now=now, rules=rules)
    answered = task.confirmed_at is not None or task.refused_at is not None
    confirm_by = (
        None if answered else calendar.add_working_hours(task.received_at, rules.confirm_window_hours)
    )
    return TaskOut.model_validate(
        {
            **{c: getattr(task, c) for c in TaskOut.model_fields if hasattr(task, c)},
            "confirm_by": confirm_by,
            "deadline_status": status,
            "colour": COLOURS[status],
        }
    )


async def list_tasks(
    session: AsyncSession,
    *,
    principal: Principal,
    filters: TaskFilters,
    now: dt.datetime,
    rules: Rules,
) -> tuple[list[Task], str | None]:
    if filters.scope == "mine":
        condition: ColumnElement[bool] = Task.responsible_user_ids.contains([principal.user_id])
    else:
        condition = visible(principal)
    query = select(Task).where(condition)
    if filters.deadline_status is not None:
        query = query.where(status_sql(now=now, rules=rules) == filters.deadline_status)
    if filters.group_code is not None:
        query = query.where(Task.group_code == filters.group_code)
    if filters.unit_id is not None:
        query = query.where(
            or_(Task.lead_unit_id == filters.unit_id, Task.cooperating_unit_ids.contains([filters.unit_id]))
        )
    if filters.cursor is not None:
        after = decode_cursor(filters.cursor)
        query = query.where(tuple_(Task.deadline, Task.id) > tuple_(*after))
    tasks = list(
        (await session.execute(query.order_by(Task.deadline, Task.id).limit(filters.limit + 1))).scalars()
    )
    more = len(tasks) > filters.limit
    tasks = tasks[: filters.limit]
    return tasks, encode_cursor(tasks[-1]) if more and tasks else None


async def counts(
    session: AsyncSession, *, principal: Principal, now: dt.datetime, rules: Rules, group_code: str | None
) -> list[StatusCount]:
    """Tasks per lead unit and deadline status, inside the caller's subtree."""
    status = status_sql(now=now, rules=rules).label("deadline_status")
    query = select(Task.lead_unit_id, status, func.count().label("n")).where(visible(principal))
    if group_code is not None:
        query = query.where(Task.group_code == group_code)
    rows = (
        await session.execute(query.group_by(Task.lead_unit_id, status).order_by(Task.lead_unit_id))
    ).all()
    return [
        StatusCount(unit_id=row.lead_unit_id, deadline_status=row.deadline_status, count=row.n)
        for row in rows
    ]


async def get_task(session: AsyncSession, *, principal: Principal, task_id: uuid.UUID) -> Task:
    task = (
        await session.execute(select(Task).where(Task.id == task_id, visible(principal)))
    ).scalar_one_or_none()
    if task is None:
        raise NotFound("Task not found")
    return task


async def task_to_answer(session: AsyncSession, *, principal: Principal, task_id: uuid.UUID) -> Task:
    """The task, locked, if ``principal`` may answer for its lead unit (confirm or refuse, D-14):
    a manager of the lead unit or one of the task's responsible people. The row lock orders a
    confirmation and a refusal sent at the same moment: the second sees the first's answer."""
    task = (
        await session.execute(
            select(Task).where(Task.id == task_id, visible(principal)).with_for_update(of=Task)
        )
    ).scalar_one_or_none()
    if task is None:
        raise NotFound("Task not found")
    lead_path = (await session.execute(select(Unit.path).where(Unit.id == task.lead_unit_id))).scalar_one()
    if not (principal.can_manage_unit(lead_path) or principal.user_id in task.responsible_user_ids):
        # A co-operating unit sees the task but does not receive it: the lead unit answers.
        raise Forbidden("Only the lead unit confirms or refuses a task", code="not_lead_unit")
    return task


async def confirm(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID, now: dt.datetime
) -> Task:
    """The lead unit confirms it received the task (D-14); stops the 8-working-hour window."""
    task = await task_to_answer(session, principal=principal, task_id=task_id)
    if task.refused_at is not None:
        raise Conflict("The unit has refused this task; it cannot also confirm it", code="task_refused")
    if task.confirmed_at is None:
        task.confirmed_at = now
        task.updated_at = now
        audit.record(
            session,
            action="tracking.task.confirmed",
            object_type="tracking_task",
            object_id=task.id,
            details={"code": task.code},
        )
        await session.flush()
    return task


async def get_preferences(session: AsyncSession, *, user_id: uuid.UUID) -> Preference:
    found = await session.get(Preference, user_id)
    return found or Preference(user_id=user_id, quiet_start=None, quiet_end=None, daily_digest=False)


async def put_preferences(
    session: AsyncSession, *, user_id: uuid.UUID, body: PreferenceIn, now: dt.datetime
) -> Preference:
    values = {
        "quiet_start": body.quiet_start,
        "quiet_end": body.quiet_end,
        "daily_digest": body.daily_digest,
        "updated_at": now,
    }
    await session.execute(
        insert(Preference)
        .values(user_id=user_id, **values)
        .on_conflict_do_update(index_elements=[Preference.user_id], set_=values)
    )
    audit.record(
        session,
        action="tracking.preferences.updated",
        object_type="user",
        object_id=user_id,
        details={
            "quiet_start": body.quiet_start.isoformat() if body.quiet_start else None,
            "quiet_end": body.quiet_end.isoformat() if body.quiet_end else None,
            "daily_digest": body.daily_digest,
        },
    )
    found = await session.get(Preference, user_id, populate_existing=True)
    assert found is not None
    return found
