"""The other answer of D-14: a unit that receives a task says, with a reason, that it was wrongly
assigned or is outside its authority. The answer is stored on the task, ends the confirm window
(the sweep's ``confirm`` reminders and escalations stop, as for a confirmation) and is sent, as a
notification to act on, to the agency that assigned the task and to the standing agency, who
must reassign or overrule it. Reassignment itself happens in the tracking system (the system of
record); a new lead unit starts a new window without the refusal (tracking/intake.py). Until then
the sweep stops the unit's deadline reminders and overdue warnings and keeps the standing agency's
overdue step (tracking/sweep.py)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import ApiClient, Unit
from auth.principal import Principal
from core.errors import Conflict
from tracking import notify, texts
from tracking.agency import agency_people, standing_agency_of
from tracking.models import Task
from tracking.rules import Rules
from tracking.schemas import TaskRefusal
from tracking.service import task_to_answer

KIND = "tracking.refused"


async def agency_units(session: AsyncSession, *, task: Task, rules: Rules) -> list[uuid.UUID]:
    """The standing agency (the configured unit, else the root of the lead unit's branch, as in
    the sweep) and the assigning agency (the unit of the connected system that sent the task)."""
    units = [await standing_agency_of(session, task=task, rules=rules)]
    if task.source_client_id is not None:
        assigning = (
            await session.execute(select(ApiClient.unit_id).where(ApiClient.id == task.source_client_id))
        ).scalar_one_or_none()
        if assigning is not None and assigning not in units:
            units.append(assigning)
    return units


async def refuse(
    session: AsyncSession,
    *,
    principal: Principal,
    task_id: uuid.UUID,
    body: TaskRefusal,
    now: dt.datetime,
    rules: Rules,
) -> Task:
    """Record the refusal and notify both agencies; 409 once the unit has answered either way."""
    task = await task_to_answer(session, principal=principal, task_id=task_id)
    if task.confirmed_at is not None:
        raise Conflict("The task was already confirmed; it cannot be refused", code="task_confirmed")
    if task.refused_at is not None:
        raise Conflict("The task was already refused", code="task_already_refused")
    task.refused_at = now
    task.refused_by = principal.user_id
    task.refusal_reason_code = body.code
    task.refusal_reason = body.reason
    task.updated_at = now
    recipients = await agency_people(session, unit_ids=await agency_units(session, task=task, rules=rules))
    if recipients:
        unit_name = (
            await session.execute(select(Unit.name).where(Unit.id == task.lead_unit_id))
        ).scalar_one()
        # Classified tasks (D-17): notify.send replaces title and body with the status line, so
        # neither the task nor the reason travels in the push or shows in the inbox.
        message = notify.Message(
            kind=KIND,
            title=texts.render("tracking.refused.title", unit=unit_name),
            body=texts.render(
                "tracking.refused.detail",
                head=f"{task.code}: {task.name}",
                unit=unit_name,
                why=texts.render(f"tracking.refused.{body.code}"),
                reason=body.reason,
            ),
            recipients=recipients,
            classified=task.classified,
            priority="high",
            data={"task_id": str(task.id), "task_code": task.code, "refusal": body.code},
            deep_link=notify.task_link(task.id),
        )
        await notify.send(session, principal=None, message=message, rules=rules)
    audit.record(
        session,
        action="tracking.task.refused",
        object_type="tracking_task",
        object_id=task.id,
        # The reason stays on the task; a classified task's reason stays out of the log's details.
        details={
            "code": task.code,
            "reason_code": body.code,
            "reason": None if task.classified else body.reason,
            "notified": len(recipients),
        },
    )
    await session.flush()
    return task
