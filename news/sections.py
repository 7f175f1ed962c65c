"""Sections readers follow (D-03): the national ones seeded by the migration, plus each
component portal's own. Following is per device for anonymous readers (the device's topics) and
per account for signed-in members (``account_topics``, copied onto every portal device linked
to the account, including devices linked later)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit
from auth.principal import Principal
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound, Unprocessable
from devices import service as devices
from devices.locales import DEFAULT_LANGUAGE
from news.models import Section
from news.schemas import SectionCreate, SectionOut, SectionUpdate

PORTAL_APP = "portal"


def out(section: Section, *, language: str) -> SectionOut:
    name = section.names.get(language) or section.names[DEFAULT_LANGUAGE]
    return SectionOut(
        id=section.id,
        code=section.code,
        name=name,
        names=section.names,
        unit_id=section.unit_id,
        position=section.position,
    )


async def list_active(session: AsyncSession, *, unit_id: uuid.UUID | None = None) -> list[Section]:
    query = select(Section).where(Section.archived_at.is_(None)).order_by(Section.position, Section.code)
    if unit_id is not None:
        query = query.where(Section.unit_id == unit_id)
    return list((await session.execute(query)).scalars())


async def create(session: AsyncSession, *, principal: Principal, body: SectionCreate) -> Section:
    """A component portal adds a section of its own (owned by the editor's unit)."""
    if principal.unit_id is None:
        raise Forbidden("Only staff of a unit may add sections", code="permission_denied")
    section_id = uuid.uuid4()
    inserted = (
        await session.execute(
            insert(Section)
            .values(
                id=section_id,
                code=body.code,
                unit_id=principal.unit_id,
                names={str(k): v for k, v in body.names.items()},
                position=body.position,
            )
            .on_conflict_do_nothing(constraint="uq_news_sections_code")
            .returning(Section.id)
        )
    ).scalar_one_or_none()
    if inserted is None:
        raise Conflict("A section with this code exists", code="section_exists")
    audit.record(
        session,
        action="news.section.created",
        object_type="news_section",
        object_id=section_id,
        details={"code": body.code},
    )
    section = await session.get(Section, section_id)
    assert section is not None
    return section


async def _owned(session: AsyncSession, *, principal: Principal, code: str) -> Section:
    """An active section the principal may change, locked for the change. National sections are
    the system admins'; a unit's sections belong to editors of that unit's subtree."""
    section = (
        await session.execute(select(Section).where(Section.code == code).with_for_update())
    ).scalar_one_or_none()
    if section is None or section.archived_at is not None:
        raise NotFound("Section not found")
    if section.unit_id is None:
        allowed = principal.sees_all_units
    else:
        path = (await session.execute(select(Unit.path).where(Unit.id == section.unit_id))).scalar_one()
        allowed = principal.can_manage_unit(path)
    if not allowed:
        raise Forbidden("This section belongs to another portal", code="section_not_yours")
    return section


async def update(session: AsyncSession, *, principal: Principal, code: str, body: SectionUpdate) -> Section:
    """Rename a section (its names per language) or move it in the list. The code stays: it is
    the topic string on readers' devices."""
    section = await _owned(session, principal=principal, code=code)
    before = {"names": section.names, "position": section.position}
    section.names = {str(k): v for k, v in body.names.items()}
    if body.position is not None:
        section.position = body.position
    audit.record(
        session,
        action="news.section.updated",
        object_type="news_section",
        object_id=section.id,
        details={"code": code, "from": before, "to": {"names": section.names, "position": section.position}},
    )
    await session.flush()
    return section


async def archive(session: AsyncSession, *, principal: Principal, code: str) -> None:
    """Stop offering a section. Readers keep the topic until they change their follows; nothing
    is sent to an archived section."""
    section = await _owned(session, principal=principal, code=code)
    section.archived_at = utcnow()
    audit.record(session, action="news.section.archived", object_type="news_section", object_id=section.id)


async def _all_codes(session: AsyncSession) -> set[str]:
    return set((await session.execute(select(Section.code))).scalars())


async def following(session: AsyncSession, *, principal: Principal) -> list[str]:
    codes = await _all_codes(session)
    if principal.device is not None:
        return sorted(set(principal.device.topics) & codes)
    topics = await devices.account_topics(session, user_id=principal.user_id, app=PORTAL_APP)
    return sorted(set(topics) & codes)


async def set_following(session: AsyncSession, *, principal: Principal, sections: list[str]) -> list[str]:
    """Replace the reader's followed sections; topics that are not sections stay as they are."""
    active = {s.code for s in await list_active(session)}
    unknown = sorted(set(sections) - active)
    if unknown:
        raise Unprocessable(
            "Unknown sections", code="unknown_sections", details=[{"section": code} for code in unknown]
        )
    wanted = set(sections)
    managed = await _all_codes(session)
    device = principal.device
    if device is not None:
        if device.app != PORTAL_APP:
            raise Forbidden("Sections belong to the portal app", code="not_portal_device")
        device.topics = sorted((set(device.topics) - managed) | wanted)
        object_type, object_id = "device", device.id
    else:
        await devices.set_account_topics(
            session, user_id=principal.user_id, app=PORTAL_APP, managed=managed, followed=wanted
        )
        object_type, object_id = "user", principal.user_id
    audit.record(
        session,
        action="news.sections.followed",
        object_type=object_type,
        object_id=object_id,
        details={"sections": sorted(wanted)},
    )
    return sorted(wanted)
