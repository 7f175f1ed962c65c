"""Inspection committees (issue 19 item 4, docs/security.md): which units a committee oversees.
The committee is a unit; its ``inspector`` accounts read those units' subtrees, read-only."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from api.deps import SessionDep, require
from auth import inspection
from auth.principal import Principal
from auth.roles import Permission
from auth.schemas import UnitOut
from core.schemas import RequestModel

router = APIRouter(tags=["inspection"])


class OverseenUnitsIn(RequestModel):
    """The whole set of units the committee oversees (replaces the stored set)."""

    unit_ids: Annotated[list[uuid.UUID], Field(max_length=inspection.MAX_OVERSEEN)]


@router.get("/committees/{unit_id}/units", response_model=list[UnitOut])
async def list_overseen(
    unit_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.UNITS_READ)
) -> list[UnitOut]:
    """The units the committee ``unit_id`` oversees (404 outside your subtree)."""
    found = await inspection.list_overseen(session, principal=principal, committee_unit_id=unit_id)
    return [UnitOut.model_validate(u) for u in found]


@router.put("/committees/{unit_id}/units", response_model=list[UnitOut])
async def put_overseen(
    unit_id: uuid.UUID,
    body: OverseenUnitsIn,
    session: SessionDep,
    principal: Principal = require(Permission.UNITS_WRITE),
) -> list[UnitOut]:
    """Replace the committee's overseen units: all inside your subtree (422 ``unknown_units``)."""
    found = await inspection.set_overseen(
        session, principal=principal, committee_unit_id=unit_id, unit_ids=body.unit_ids
    )
    return [UnitOut.model_validate(u) for u in found]
