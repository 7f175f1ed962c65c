"""Whose tracking data a person sees and is warned about (D-16): one place for every leader-facing
filter, so that none of them misses a rule.

- The units in reach: one's own unit subtree; for an inspector (auth/inspection.py), the subtrees
  of the units its committee oversees instead; system admins reach every unit.
- The fields in charge: a leader's fields of responsibility (``LeaderField``); a task of one of
  them is in the leader's view whatever its unit. A delegate acts with the leader's principal
  (``Principal.user`` is the leader, D-24), so it sees through the leader's fields too; only the
  ``leader`` role has fields (an account moved to another role keeps its rows but not their reach).
- One's own tasks: those one is named responsible for.

``task_scope`` is the SQLAlchemy condition of the API, the console and the counts;
``LEADERS_IN_CHARGE`` the SQL of the sweep's recipients, for warnings and escalations that go to
"the leaders" of a task (the lead unit's leaders and the leaders in charge of its field)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, false, func, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit
from auth.principal import Principal
from auth.roles import Role
from tracking.models import Kpi, LeaderField, Task


def in_reach(principal: Principal) -> ColumnElement[bool]:
    """A condition on ``Unit``: the units whose tasks the principal reads (system admins aside)."""
    paths = principal.read_paths
    if not paths:
        return false()
    return or_(*(Unit.path.startswith(p, autoescape=True) for p in paths))


def units_in_reach(principal: Principal) -> Select[uuid.UUID]:
    return select(Unit.id).where(in_reach(principal))


def fields_in_charge(principal: Principal) -> Select[uuid.UUID] | None:
    """The leader's fields (None for any other principal)."""
    if principal.user is None or principal.role != Role.LEADER:
        return None
    return select(LeaderField.field_id).where(LeaderField.user_id == principal.user.id)


def task_scope(principal: Principal) -> ColumnElement[bool]:
    """Tasks the principal may see: its own, those led or co-operated by a unit in reach, and
    those of a field it is in charge of."""
    if principal.sees_all_units:
        return true()
    conditions: list[ColumnElement[bool]] = [
        Task.lead_unit_id.in_(units_in_reach(principal)),
        Task.cooperating_unit_ids.overlap(
            select(func.array_agg(Unit.id)).where(in_reach(principal)).scalar_subquery()
        ),
    ]
    if principal.user is not None:
        conditions.append(Task.responsible_user_ids.contains([principal.user.id]))
    fields = fields_in_charge(principal)
    if fields is not None:
        conditions.append(Task.field_id.in_(fields))
    return or_(*conditions)


def kpi_scope(principal: Principal) -> ColumnElement[bool]:
    """KPIs the principal may see: those of a unit in reach, and those it is responsible for
    (KPIs carry no field)."""
    if principal.sees_all_units:
        return true()
    conditions: list[ColumnElement[bool]] = [Kpi.unit_id.in_(units_in_reach(principal))]
    if principal.user is not None:
        conditions.append(Kpi.responsible_user_ids.contains([principal.user.id]))
    return or_(*conditions)


def leaders_in_charge_sql(unit: str, field: str) -> str:
    """A ``SELECT`` of the ids of the leaders accountable for a task of ``unit`` and ``field``
    (SQL expressions of the caller's query, constants of this package, never user input): the
    unit's leaders and the leaders in charge of the field."""
    return f"""
        SELECT u.id FROM users u WHERE u.role = 'leader' AND u.unit_id = {unit}
        UNION
        SELECT lf.user_id FROM tracking_leader_fields lf JOIN users u ON u.id = lf.user_id
         WHERE {field} IS NOT NULL AND lf.field_id = {field} AND u.role = 'leader'
    """  # noqa: S608


async def units_in_view(session: AsyncSession, *, principal: Principal, limit: int) -> list[Unit]:
    """The units a task filter offers, in tree order: those in reach (every unit for system
    admins; an inspector's overseen subtrees rather than its committee's own)."""
    query = select(Unit).order_by(Unit.path).limit(limit)
    if not principal.sees_all_units:
        query = query.where(in_reach(principal))
    return list((await session.execute(query)).scalars())


_LEADERS_OF = text(
    f"""
    SELECT k.task_id, l.id AS user_id
      FROM unnest(CAST(:tasks AS uuid[]), CAST(:units AS uuid[]), CAST(:fields AS uuid[]))
           AS k(task_id, unit_id, field_id)
      CROSS JOIN LATERAL ({leaders_in_charge_sql("k.unit_id", "k.field_id")}) AS l(id)
      JOIN users a ON a.id = l.id AND a.is_active
     ORDER BY k.task_id, l.id
    """  # noqa: S608
)


async def leaders_in_charge(
    session: AsyncSession, *, tasks: Sequence[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The active leaders accountable for each (task id, lead unit, field): the sweep's rule
    (``leaders_in_charge_sql``) for the notifications sent outside the sweep."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {task_id: [] for task_id, _, _ in tasks}
    if not tasks:
        return found
    rows = await session.execute(
        _LEADERS_OF,
        {"tasks": [t[0] for t in tasks], "units": [t[1] for t in tasks], "fields": [t[2] for t in tasks]},
    )
    for row in rows:
        found[row.task_id].append(row.user_id)
    return found
