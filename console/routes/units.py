"""The unit tree of the admin's subtree (D-20): the tree, one unit's page, create a unit under a
parent, rename. The same services and permissions as ``/v1/units`` (``units:read`` to look,
``units:write`` to change), whose use cases keep an admin inside their subtree and audit
``unit.created`` / ``unit.renamed``. The domain has no move or disable of a unit (users, tasks
and API clients hang on it), so neither has the console."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Require, SessionDep
from auth import units as unit_service
from auth.models import Unit
from auth.principal import Principal
from auth.roles import Permission
from auth.schemas import UnitCreate, UnitUpdate
from console.form_errors import describe
from console.forms import see_other
from console.security import verify_csrf
from console.templating import render
from core.db import abandon
from core.errors import BadRequest, Conflict

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.UNITS_READ))
Writer = Depends(Require(Permission.UNITS_WRITE))
# Generous request bounds only: the API's request model says what is too long, in words.
Field = Annotated[str, Form(max_length=2000)]
PAGE_SIZE = 500
_PATH = re.compile(r"^[0-9a-f/]{1,2000}$")


@dataclass
class Node:
    unit: Unit
    children: list[Node] = field(default_factory=list)


def _tree(units: list[Unit]) -> list[Node]:
    """Nest the subtree (in path order) under its tops: the caller's own unit, or every root."""
    nodes = {u.id: Node(u) for u in units}
    tops: list[Node] = []
    for unit in units:  # path order: a parent always comes before its children
        parent = nodes.get(unit.parent_id) if unit.parent_id else None
        (parent.children if parent else tops).append(nodes[unit.id])
    return tops


async def _units_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    after: str = "",
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    units = await unit_service.list_units(
        session, principal=principal, limit=PAGE_SIZE + 1, after_path=after or None
    )
    more = len(units) > PAGE_SIZE
    units = units[:PAGE_SIZE]
    return render(
        request,
        "admin/units.html",
        {
            "tree": _tree(units),
            "units": units,
            "kinds": unit_service.UNIT_KINDS,
            "next_after": units[-1].path if more else "",
            "done": done,
            "error": error,
            "values": values or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/units")
async def units_page(
    request: Request, session: SessionDep, after: str = "", done: str = "", principal: Principal = Reader
) -> Response:
    if after and not _PATH.match(after):
        raise BadRequest("Unknown page", code="invalid_cursor")
    return await _units_page(request, session, principal, after=after, done=done)


@router.post("/units")
async def create_unit(
    request: Request,
    session: SessionDep,
    parent_id: Field,
    code: Field,
    name: Field,
    kind: Field,
    principal: Principal = Writer,
) -> Response:
    """As ``POST /v1/units``; a refusal shows the form again with what was typed."""
    values = {"parent_id": parent_id, "code": code, "name": name, "kind": kind}
    try:
        body = UnitCreate.model_validate(values)
        unit = await unit_service.create_unit(
            session,
            principal=principal,
            parent_id=body.parent_id,
            code=body.code,
            name=body.name,
            kind=body.kind,
        )
    except ValidationError as exc:
        return await _units_page(
            request, session, principal, error=describe(exc), values=values, status_code=422
        )
    except Conflict as exc:  # the code is taken: refused inside its savepoint, nothing written
        await abandon(session)  # the refused row must not be flushed again while the page renders
        return await _units_page(
            request, session, principal, error=exc.message, values=values, status_code=exc.status_code
        )
    return see_other(f"/admin/units/{unit.id}?done=unit_created")


@router.get("/units/{unit_id}")
async def unit_page(
    request: Request,
    unit_id: uuid.UUID,
    session: SessionDep,
    done: str = "",
    principal: Principal = Reader,
) -> Response:
    return await _unit_page(request, session, principal, unit_id=unit_id, done=done)


async def _unit_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    unit_id: uuid.UUID,
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    unit = await unit_service.get_unit(session, principal=principal, unit_id=unit_id)
    parent = await session.get(Unit, unit.parent_id) if unit.parent_id else None
    return render(
        request,
        "admin/unit.html",
        {
            "unit": unit,
            # Above the admin's own unit, the parent is outside their subtree: not named.
            "parent": parent if parent is not None and principal.can_manage_unit(parent.path) else None,
            "kinds": unit_service.UNIT_KINDS,
            "done": done,
            "error": error,
            "values": values or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.post("/units/{unit_id}/rename")
async def rename_unit(
    request: Request, unit_id: uuid.UUID, session: SessionDep, name: Field, principal: Principal = Writer
) -> Response:
    """As ``PATCH /v1/units/{id}``."""
    try:
        body = UnitUpdate(name=name)
    except ValidationError as exc:
        return await _unit_page(
            request,
            session,
            principal,
            unit_id=unit_id,
            error=describe(exc),
            values={"name": name},
            status_code=422,
        )
    await unit_service.rename_unit(session, principal=principal, unit_id=unit_id, name=body.name)
    return see_other(f"/admin/units/{unit_id}?done=unit_renamed")
