"""The unit tree (D-20): central agencies, ministries, provinces, communes…"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit
from auth.principal import Principal
from core.db import flush_unique
from core.errors import Conflict, NotFound

UNIT_KINDS = ("central", "ministry", "agency", "province", "district", "commune", "department", "portal")


async def create_root_unit(session: AsyncSession, *, code: str, name: str, kind: str) -> Unit:
    unit_id = uuid.uuid4()
    unit = Unit(id=unit_id, parent_id=None, code=code, name=name, kind=kind, path=f"{unit_id.hex}/", depth=0)
    session.add(unit)
    await _flush_unique(session)
    audit.record(
        session,
        action="unit.created",
        object_type="unit",
        object_id=unit.id,
        unit_id=unit.id,
        details={"code": code, "name": name, "kind": kind, "parent_id": None},
    )
    return unit


async def create_unit(
    session: AsyncSession, *, principal: Principal, parent_id: uuid.UUID, code: str, name: str, kind: str
) -> Unit:
    parent = await get_unit(session, principal=principal, unit_id=parent_id)
    unit_id = uuid.uuid4()
    unit = Unit(
        id=unit_id,
        parent_id=parent.id,
        code=code,
        name=name,
        kind=kind,
        path=f"{parent.path}{unit_id.hex}/",
        depth=parent.depth + 1,
    )
    session.add(unit)
    await _flush_unique(session)
    audit.record(
        session,
        action="unit.created",
        object_type="unit",
        object_id=unit.id,
        unit_id=unit.id,
        details={"code": code, "name": name, "kind": kind, "parent_id": str(parent.id)},
    )
    return unit


async def _flush_unique(session: AsyncSession) -> None:
    await flush_unique(
        session, conflict=Conflict("A unit with this code already exists", code="unit_code_taken")
    )


async def get_unit(session: AsyncSession, *, principal: Principal, unit_id: uuid.UUID) -> Unit:
    """A unit the principal may see: inside its subtree (system admins see all). Outside → 404,
    so that ids of other subtrees are not even confirmed to exist."""
    unit = await session.get(Unit, unit_id)
    if unit is None or not principal.can_manage_unit(unit.path):
        raise NotFound("Unit not found")
    return unit


async def rename_unit(session: AsyncSession, *, principal: Principal, unit_id: uuid.UUID, name: str) -> Unit:
    unit = await get_unit(session, principal=principal, unit_id=unit_id)
    old = unit.name
    unit.name = name
    audit.record(
        session,
        action="unit.renamed",
        object_type="unit",
        object_id=unit.id,
        unit_id=unit.id,
        details={"from": old, "to": name},
    )
    await session.flush()
    return unit


async def list_units(
    session: AsyncSession, *, principal: Principal, limit: int, after_path: str | None
) -> list[Unit]:
    """The principal's subtree in tree order (path), keyset-paginated by path."""
    query = select(Unit).order_by(Unit.path).limit(limit)
    if not principal.sees_all_units:
        query = query.where(Unit.path.startswith(principal.unit_path, autoescape=True))
    if after_path is not None:
        query = query.where(Unit.path > after_path)
    return list((await session.execute(query)).scalars())
