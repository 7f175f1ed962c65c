"""What was reminded when (D-13, D-16): a task's rows of the reminder ledger, for the leaders'
console. Read-only. Visibility is the task's: ``service.get_task`` raises 404 for a task outside
the caller's subtree, so the ledger of another unit's task is never read."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit, User
from auth.principal import Principal
from tracking import service
from tracking.models import Reminder, Task, UpdateRequest


@dataclass(frozen=True)
class ReminderEntry:
    rule: str  # deadline | overdue | confirm | report | request
    occurrence: str
    status: str  # pending | sent | dropped
    channel: str
    priority: str
    due_at: dt.datetime
    sent_at: dt.datetime | None
    recipient: str  # the recipient's full name (username when the account is gone)
    username: str | None


async def reminders_of_task(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID
) -> tuple[Task, list[ReminderEntry]]:
    """The task (visibility checked) and its ledger rows and its requests', oldest first."""
    task = await service.get_task(session, principal=principal, task_id=task_id)
    rows = (
        await session.execute(
            select(Reminder, User.full_name, User.username)
            .outerjoin(User, User.id == Reminder.user_id)
            .where(
                or_(
                    Reminder.subject_id == task.id,
                    # The reminders of its update requests (their subject is the request).
                    Reminder.subject_id.in_(select(UpdateRequest.id).where(UpdateRequest.task_id == task.id)),
                )
            )
            .order_by(Reminder.due_at, Reminder.id)
        )
    ).all()
    return task, [
        ReminderEntry(
            rule=r.rule,
            occurrence=r.occurrence,
            status=r.status,
            channel=r.channel,
            priority=r.priority,
            due_at=r.due_at,
            sent_at=r.sent_at,
            recipient=full_name or username or str(r.user_id),
            username=username,
        )
        for r, full_name, username in rows
    ]


async def unit_names(session: AsyncSession, *, unit_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of the units a caller's tasks and counts mention (a co-operated task may be led by a
    unit outside the caller's subtree: its name is shown, nothing else of it)."""
    if not unit_ids:
        return {}
    rows = await session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids)))
    return {row.id: row.name for row in rows}
