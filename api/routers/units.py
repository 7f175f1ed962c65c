"""The unit tree, seen from the caller's subtree."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from api.deps import SessionDep, require
from auth import units as unit_service
from auth.principal import Principal
from auth.roles import Permission
from auth.schemas import UnitCreate, UnitOut, UnitUpdate
from auth.users import decode_cursor, encode_cursor
from core.schemas import Page

router = APIRouter(tags=["units"])


@router.get("", response_model=Page[UnitOut])
async def list_units(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    principal: Principal = require(Permission.UNITS_READ),
) -> Page[UnitOut]:
    units = await unit_service.list_units(
        session, principal=principal, limit=limit + 1, after_path=decode_cursor(cursor) if cursor else None
    )
    next_cursor = encode_cursor(units[limit - 1].path) if len(units) > limit else None
    return Page[UnitOut](items=[UnitOut.model_validate(u) for u in units[:limit]], next_cursor=next_cursor)


@router.post("", response_model=UnitOut, status_code=status.HTTP_201_CREATED)
async def create_unit(
    body: UnitCreate, session: SessionDep, principal: Principal = require(Permission.UNITS_WRITE)
) -> UnitOut:
    unit = await unit_service.create_unit(
        session, principal=principal, parent_id=body.parent_id, code=body.code, name=body.name, kind=body.kind
    )
    return UnitOut.model_validate(unit)


@router.get("/{unit_id}", response_model=UnitOut)
async def get_unit(
    unit_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.UNITS_READ)
) -> UnitOut:
    return UnitOut.model_validate(await unit_service.get_unit(session, principal=principal, unit_id=unit_id))


@router.patch("/{unit_id}", response_model=UnitOut)
async def rename_unit(
    unit_id: uuid.UUID,
    body: UnitUpdate,
    session: SessionDep,
    principal: Principal = require(Permission.UNITS_WRITE),
) -> UnitOut:
    unit = await unit_service.rename_unit(session, principal=principal, unit_id=unit_id, name=body.name)
    return UnitOut.model_validate(unit)
