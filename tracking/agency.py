"""Who the agencies of a task are: the standing agency (cơ quan thường trực, D-15), which approves
reports, asks for updates and gets the last escalation, and the people who act for an agency.
One definition for the sweep's ``standing_agency`` target, refusals (D-14) and update requests."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit, User
from auth.roles import Role
from tracking.models import Task
from tracking.rules import Rules
from tracking.sweep import standing_agency_id

# Who acts for an agency on a task: the same people the sweep's "standing_agency" escalation
# reaches (tracking/sweep.py), so one list of accountable roles.
AGENCY_ROLES = (Role.TASK_APPROVER.value, Role.LEADER.value)


async def standing_agency_of(session: AsyncSession, *, task: Task, rules: Rules) -> uuid.UUID:
    """The configured standing agency, else the root of the lead unit's branch (as the sweep)."""
    standing = await standing_agency_id(session, rules)
    if standing is not None:
        return standing
    lead_path = (await session.execute(select(Unit.path).where(Unit.id == task.lead_unit_id))).scalar_one()
    return uuid.UUID(lead_path.split("/")[0])


async def agency_people(session: AsyncSession, *, unit_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    rows = await session.execute(
        select(User.id)
        .where(User.unit_id.in_(unit_ids), User.role.in_(AGENCY_ROLES), User.is_active)
        .order_by(User.id)
    )
    return list(rows.scalars())
