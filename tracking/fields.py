"""Fields of responsibility (lĩnh vực, D-16) as data: the catalogue of fields, the field each task
carries, and which leaders are in charge of which fields. What a field gives a leader (its tasks
in their views, warnings and escalations) is tracking/scope.py's.

- The catalogue is one per deployment, like the working calendar: system admins keep it.
- A leader's fields are set by an admin who may manage the leader's account (its unit subtree).
- A task's field comes with the task from the tracking system (intake), or is changed by the
  connected system that may edit the task (``set_task_field``), as every other task attribute.
Every change is audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit, User
from auth.principal import Principal
from auth.roles import Role
from core.db import flush_unique, utcnow
from core.errors import Conflict, NotFound, Unprocessable
from tracking.models import LeaderField, Task, TrackingField


async def resolve_fields(session: AsyncSession, codes: Iterable[str]) -> dict[str, uuid.UUID]:
    """Field ids by code; 422 naming the unknown codes."""
    wanted = set(codes)
    if not wanted:
        return {}
    rows = await session.execute(
        select(TrackingField.code, TrackingField.id).where(TrackingField.code.in_(wanted))
    )
    found = {row.code: row.id for row in rows}
    missing = sorted(wanted - found.keys())
    if missing:
        raise Unprocessable(
            "Unknown fields", code="unknown_fields", details=[{"field": code} for code in missing[:50]]
        )
    return found


async def list_fields(session: AsyncSession) -> list[TrackingField]:
    return list((await session.execute(select(TrackingField).order_by(TrackingField.code))).scalars())


async def create_field(session: AsyncSession, *, code: str, name_vi: str, name_en: str) -> TrackingField:
    field = TrackingField(id=uuid.uuid4(), code=code, name_vi=name_vi, name_en=name_en)
    session.add(field)
    await flush_unique(session, conflict=Conflict("A field with this code exists", code="field_code_taken"))
    audit.record(
        session,
        action="tracking.field.created",
        object_type="tracking_field",
        object_id=field.id,
        details={"code": code, "name_vi": name_vi, "name_en": name_en},
    )
    return field


async def rename_field(
    session: AsyncSession, *, field_id: uuid.UUID, name_vi: str, name_en: str
) -> TrackingField:
    field = await session.get(TrackingField, field_id, with_for_update=True)
    if field is None:
        raise NotFound("Field not found")
    before = {"name_vi": field.name_vi, "name_en": field.name_en}
    field.name_vi, field.name_en, field.updated_at = name_vi, name_en, utcnow()
    audit.record(
        session,
        action="tracking.field.renamed",
        object_type="tracking_field",
        object_id=field.id,
        details={"code": field.code, "from": before, "to": {"name_vi": name_vi, "name_en": name_en}},
    )
    await session.flush()
    return field


async def _managed_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
    """The account, if the admin may manage it (404 otherwise, as for users outside one's subtree)."""
    row = (
        await session.execute(
            select(User, Unit.path).join(Unit, Unit.id == User.unit_id).where(User.id == user_id)
        )
    ).first()
    if row is None or not principal.can_manage_unit(row.path):
        raise NotFound("User not found")
    user: User = row.User
    return user


async def fields_of_leader(session: AsyncSession, *, user_id: uuid.UUID) -> list[TrackingField]:
    rows = await session.execute(
        select(TrackingField)
        .join(LeaderField, LeaderField.field_id == TrackingField.id)
        .where(LeaderField.user_id == user_id)
        .order_by(TrackingField.code)
    )
    return list(rows.scalars())


async def get_leader_fields(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID
) -> list[TrackingField]:
    await _managed_user(session, principal, user_id)
    return await fields_of_leader(session, user_id=user_id)


async def set_leader_fields(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, codes: list[str]
) -> list[TrackingField]:
    """Replace the leader's fields. Only ``leader`` accounts have fields (422 for the rest)."""
    user = await _managed_user(session, principal, user_id)
    wanted_codes = set(codes)
    if wanted_codes and user.role != Role.LEADER.value:
        raise Unprocessable("Only leaders are put in charge of fields", code="not_a_leader")
    wanted = set((await resolve_fields(session, wanted_codes)).values())
    # The account's row lock orders two admins editing the same leader's fields at once.
    await session.execute(select(User.id).where(User.id == user.id).with_for_update())
    before = set(
        (await session.execute(select(LeaderField.field_id).where(LeaderField.user_id == user.id))).scalars()
    )
    removed, added = before - wanted, wanted - before
    if removed:
        await session.execute(
            delete(LeaderField).where(LeaderField.user_id == user.id, LeaderField.field_id.in_(removed))
        )
    if added:
        await session.execute(
            insert(LeaderField)
            .values([{"user_id": user.id, "field_id": f} for f in sorted(added)])
            .on_conflict_do_nothing()
        )
    if added or removed:
        audit.record(
            session,
            action="tracking.leader_fields.changed",
            object_type="user",
            object_id=user.id,
            unit_id=user.unit_id,
            details={"added": sorted(str(f) for f in added), "removed": sorted(str(f) for f in removed)},
        )
    return await fields_of_leader(session, user_id=user.id)


async def set_task_field(
    session: AsyncSession, *, principal: Principal, task_id: uuid.UUID, code: str | None
) -> Task:
    """Change a task's field, for the connected system that may edit the task (its lead unit is in
    the system's subtree, as for intake: 404 otherwise)."""
    row = (
        await session.execute(
            select(Task, Unit.path)
            .join(Unit, Unit.id == Task.lead_unit_id)
            .where(Task.id == task_id)
            .with_for_update(of=Task)
        )
    ).first()
    if row is None or not principal.can_manage_unit(row.path):
        raise NotFound("Task not found")
    task: Task = row.Task
    field_id = (await resolve_fields(session, [code]))[code] if code is not None else None
    if task.field_id != field_id:
        before = task.field_id
        task.field_id, task.updated_at = field_id, utcnow()
        audit.record(
            session,
            action="tracking.task.field_changed",
            object_type="tracking_task",
            object_id=task.id,
            unit_id=task.lead_unit_id,
            details={
                "code": task.code,
                "from": str(before) if before else None,
                "to": str(field_id) if field_id else None,
            },
        )
        await session.flush()
    return task


async def leaders_by_field(session: AsyncSession, *, principal: Principal) -> dict[uuid.UUID, list[User]]:
    """The leaders in charge of each field, among the accounts the admin may manage (the console's
    Fields page)."""
    query = (
        select(LeaderField.field_id, User)
        .join(User, User.id == LeaderField.user_id)
        .join(Unit, Unit.id == User.unit_id)
        .order_by(User.full_name, User.id)
    )
    if not principal.sees_all_units:
        query = query.where(Unit.path.startswith(principal.unit_path, autoescape=True))
    found: dict[uuid.UUID, list[User]] = {}
    for field_id, user in (await session.execute(query)).all():
        found.setdefault(field_id, []).append(user)
    return found
