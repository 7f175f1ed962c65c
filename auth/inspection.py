"""Inspection committees (Ủy ban Kiểm tra, issue 19 item 4): which units a committee oversees.

A committee is a unit of the tree; its ``inspector`` accounts read the tracking data of the
overseen units' subtrees and write nothing (auth/roles.py READ_ONLY_ROLES, enforced for every
route by ``api.deps.Authenticated``). The mapping is data that admins keep: an admin may map a
committee and units that are both inside their own subtree (system admins: any)."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import InspectionOversight, Unit
from auth.principal import Principal
from auth.units import get_unit
from core.errors import Unprocessable

MAX_OVERSEEN = 500


async def overseen_paths(session: AsyncSession, *, committee_unit_id: uuid.UUID) -> tuple[str, ...]:
    """The subtree paths an inspector of this committee reads, in tree order."""
    rows = await session.execute(
        select(Unit.path)
        .join(InspectionOversight, InspectionOversight.unit_id == Unit.id)
        .where(InspectionOversight.committee_unit_id == committee_unit_id)
        .order_by(Unit.path)
    )
    return tuple(rows.scalars())


async def list_overseen(
    session: AsyncSession, *, principal: Principal, committee_unit_id: uuid.UUID
) -> list[Unit]:
    await get_unit(session, principal=principal, unit_id=committee_unit_id)
    rows = await session.execute(
        select(Unit)
        .join(InspectionOversight, InspectionOversight.unit_id == Unit.id)
        .where(InspectionOversight.committee_unit_id == committee_unit_id)
        .order_by(Unit.path)
    )
    return list(rows.scalars())


async def set_overseen(
    session: AsyncSession, *, principal: Principal, committee_unit_id: uuid.UUID, unit_ids: list[uuid.UUID]
) -> list[Unit]:
    """Replace the committee's overseen units. Units outside the admin's subtree are reported as
    unknown (422), like unknown ids, so that ids of other subtrees are not confirmed to exist."""
    committee = await get_unit(session, principal=principal, unit_id=committee_unit_id)
    wanted = set(unit_ids)
    if len(wanted) > MAX_OVERSEEN:
        raise Unprocessable(f"At most {MAX_OVERSEEN} units per committee", code="too_many_units")
    rows = (await session.execute(select(Unit.id, Unit.path).where(Unit.id.in_(wanted)))).all()
    found = {row.id for row in rows if principal.can_manage_unit(row.path)}
    missing = sorted(str(u) for u in wanted - found)
    if missing:
        details = [{"unit_id": u} for u in missing[:50]]
        raise Unprocessable("Unknown units", code="unknown_units", details=details)
    # The committee's row lock orders two admins editing the same committee at once.
    await session.execute(select(Unit.id).where(Unit.id == committee.id).with_for_update())
    before = set(
        (
            await session.execute(
                select(InspectionOversight.unit_id).where(
                    InspectionOversight.committee_unit_id == committee.id
                )
            )
        ).scalars()
    )
    removed, added = before - wanted, wanted - before
    if removed:
        await session.execute(
            delete(InspectionOversight).where(
                InspectionOversight.committee_unit_id == committee.id,
                InspectionOversight.unit_id.in_(removed),
            )
        )
    if added:
        await session.execute(
            insert(InspectionOversight)
            .values([{"committee_unit_id": committee.id, "unit_id": u} for u in sorted(added)])
            .on_conflict_do_nothing()
        )
    if added or removed:
        audit.record(
            session,
            action="inspection.oversight.changed",
            object_type="unit",
            object_id=committee.id,
            unit_id=committee.id,
            details={"added": sorted(str(u) for u in added), "removed": sorted(str(u) for u in removed)},
        )
    return await list_overseen(session, principal=principal, committee_unit_id=committee.id)
