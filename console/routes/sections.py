"""Sections readers follow (D-03): the list, a portal's new section, a section's names and place
in the list, archiving. The same services and permission as ``/v1/sections`` (``news:edit``):
``news.sections`` decides who may change which section (national ones: system admins; a
component portal's: editors of that unit's subtree) and audits ``news.section.created`` /
``.updated`` / ``.archived``. The code never changes: it is the topic on readers' devices.

Under ``/sections``, not ``/news/sections``: the news pages' ``/news/{item_id}`` comes first."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api.deps import Require, SessionDep
from auth.models import Unit
from auth.principal import Principal
from auth.roles import Permission
from console.form_errors import describe
from console.forms import see_other
from console.i18n import _
from console.security import verify_csrf
from console.templating import render
from core.db import abandon
from core.errors import Conflict, NotFound, Unprocessable
from devices.locales import SUPPORTED_LANGUAGES
from news import sections as section_service
from news.models import Section
from news.schemas import SectionCreate, SectionUpdate

router = APIRouter(prefix="/sections", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Editor = Depends(Require(Permission.NEWS_EDIT))
Field = Annotated[str, Form(max_length=2000)]
_CODE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _names(form: FormData) -> dict[str, str]:
    """``name_vi``, ``name_en``…: the languages filled in (an empty one is no name)."""
    names = {}
    for language in SUPPORTED_LANGUAGES:
        value = form.get(f"name_{language}", "")
        if isinstance(value, str) and value.strip():
            names[language] = value.strip()
    return names


def _position(value: str) -> int | str | None:
    """The form's number, or the text itself for the model to refuse (never a 500)."""
    value = value.strip()
    if not value:
        return None
    return int(value) if value.isascii() and value.lstrip("-").isdigit() and len(value) < 12 else value


async def _changeable(session: AsyncSession, principal: Principal, sections: list[Section]) -> set[str]:
    """Codes of the sections this principal may change: the rule of ``news.sections._owned``,
    asked here only to show or hide the buttons (the service decides again on every change)."""
    unit_ids = {s.unit_id for s in sections if s.unit_id is not None}
    paths = {
        row.id: row.path
        for row in await session.execute(select(Unit.id, Unit.path).where(Unit.id.in_(unit_ids)))
    }
    return {
        s.code
        for s in sections
        if (principal.sees_all_units if s.unit_id is None else principal.can_manage_unit(paths[s.unit_id]))
    }


async def _list_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    sections = await section_service.list_active(session)
    unit_ids = {s.unit_id for s in sections if s.unit_id is not None}
    units = {
        row.id: row.name
        for row in await session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids)))
    }
    return render(
        request,
        "sections/list.html",
        {
            "sections": sections,
            "unit_names": units,
            "changeable": await _changeable(session, principal, sections),
            "languages": SUPPORTED_LANGUAGES,
            "can_create": principal.unit_id is not None,
            "done": done,
            "error": error,
            "values": values or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("")
async def sections_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = Editor
) -> Response:
    return await _list_page(request, session, principal, done=done)


@router.post("")
async def create_section(
    request: Request, session: SessionDep, code: Field, position: Field = "", principal: Principal = Editor
) -> Response:
    """As ``POST /v1/sections``: the section belongs to the editor's unit."""
    form = await request.form()
    values: dict[str, Any] = {
        "code": code,
        "position": position,
        **{f"name_{k}": v for k, v in _names(form).items()},
    }
    try:
        fields: dict[str, Any] = {"code": code.strip(), "names": _names(form)}
        if (number := _position(position)) is not None:
            fields["position"] = number
        body = SectionCreate.model_validate(fields)
        await section_service.create(session, principal=principal, body=body)
    except ValidationError as exc:
        return await _list_page(
            request, session, principal, error=describe(exc), values=values, status_code=422
        )
    except Conflict as exc:  # on-conflict-do-nothing: nothing was written
        await abandon(session)  # the refused row must not be flushed again while the page renders
        return await _list_page(
            request, session, principal, error=exc.message, values=values, status_code=exc.status_code
        )
    return see_other("/sections?done=section_created")


async def _section(session: AsyncSession, code: str) -> Section:
    if not _CODE.match(code):
        raise NotFound("Section not found")
    section = (
        await session.execute(select(Section).where(Section.code == code, Section.archived_at.is_(None)))
    ).scalar_one_or_none()
    if section is None:
        raise NotFound("Section not found")
    return section


async def _edit_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    code: str,
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    section = await _section(session, code)
    unit = await session.get(Unit, section.unit_id) if section.unit_id else None
    return render(
        request,
        "sections/edit.html",
        {
            "section": section,
            "unit": unit,
            "changeable": code in await _changeable(session, principal, [section]),
            "languages": SUPPORTED_LANGUAGES,
            "done": done,
            "error": error,
            "values": values
            or {"position": section.position, **{f"name_{k}": v for k, v in section.names.items()}},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/{code}")
async def section_page(
    request: Request, code: str, session: SessionDep, done: str = "", principal: Principal = Editor
) -> Response:
    return await _edit_page(request, session, principal, code=code, done=done)


@router.post("/{code}")
async def update_section(
    request: Request, code: str, session: SessionDep, position: Field = "", principal: Principal = Editor
) -> Response:
    """As ``PATCH /v1/sections/{code}``."""
    await _section(session, code)
    form = await request.form()
    values: dict[str, Any] = {"position": position, **{f"name_{k}": v for k, v in _names(form).items()}}
    try:
        fields: dict[str, Any] = {"names": _names(form)}
        if (number := _position(position)) is not None:
            fields["position"] = number
        body = SectionUpdate.model_validate(fields)
    except ValidationError as exc:
        return await _edit_page(
            request, session, principal, code=code, error=describe(exc), values=values, status_code=422
        )
    await section_service.update(session, principal=principal, code=code, body=body)
    return see_other(f"/sections/{code}?done=section_updated")


@router.post("/{code}/archive")
async def archive_section(
    code: str,
    session: SessionDep,
    confirm: Annotated[str, Form(max_length=8)] = "",
    principal: Principal = Editor,
) -> Response:
    """As ``DELETE /v1/sections/{code}``, after the box is ticked: readers lose the section."""
    if confirm != "yes":
        raise Unprocessable(_("Tick the box to confirm."), code="confirmation_required")
    await _section(session, code)
    await section_service.archive(session, principal=principal, code=code)
    return see_other("/sections?done=section_archived")
