"""Sections of the portal app readers follow (D-03), and each reader's follows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import PUBLIC, Authenticated, SessionDep, require
from auth.principal import Principal
from auth.roles import Permission
from devices.locales import normalise_locale
from news import sections
from news.schemas import Following, FollowingOut, SectionCode, SectionCreate, SectionOut, SectionUpdate

router = APIRouter(tags=["sections"])

Reader = Depends(Authenticated(allow_device=True))


@router.get("", response_model=list[SectionOut], dependencies=[PUBLIC])
async def list_sections(
    session: SessionDep,
    lang: Annotated[str, Query(max_length=35, description="vi, en, zh, fr, es, ru (others → vi)")] = "vi",
    unit_id: uuid.UUID | None = None,
) -> list[SectionOut]:
    """Every section readers can follow, named in ``lang``: the national ones and the
    component portals' (``unit_id`` narrows to one portal)."""
    language = normalise_locale(lang)
    return [sections.out(s, language=language) for s in await sections.list_active(session, unit_id=unit_id)]


@router.post("", response_model=SectionOut, status_code=status.HTTP_201_CREATED)
async def create_section(
    body: SectionCreate, session: SessionDep, principal: Principal = require(Permission.NEWS_EDIT)
) -> SectionOut:
    """A component portal adds a section of its own (Vietnamese name required)."""
    return sections.out(await sections.create(session, principal=principal, body=body), language="vi")


@router.get("/following", response_model=FollowingOut)
async def get_following(session: SessionDep, principal: Principal = Reader) -> FollowingOut:
    """The caller's sections: the device's (device credential) or the account's (signed in)."""
    return FollowingOut(sections=await sections.following(session, principal=principal))


@router.put("/following", response_model=FollowingOut)
async def set_following(body: Following, session: SessionDep, principal: Principal = Reader) -> FollowingOut:
    """Replace the followed sections. Signed-in members follow per account: every portal device
    linked to the account (now or later) gets these topics."""
    followed = await sections.set_following(session, principal=principal, sections=body.sections)
    return FollowingOut(sections=followed)


@router.patch("/{code}", response_model=SectionOut)
async def update_section(
    code: SectionCode,
    body: SectionUpdate,
    session: SessionDep,
    principal: Principal = require(Permission.NEWS_EDIT),
) -> SectionOut:
    """Rename a section or move it in the list (its portal's editors; national sections: system
    admins). The code stays: it is the topic on readers' devices."""
    return sections.out(
        await sections.update(session, principal=principal, code=code, body=body), language="vi"
    )


@router.delete("/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def archive_section(
    code: SectionCode, session: SessionDep, principal: Principal = require(Permission.NEWS_EDIT)
) -> None:
    """Stop offering a section (its portal's editors; national sections: system admins)."""
    await sections.archive(session, principal=principal, code=code)
