"""Breaking-news drafts: who may see and edit them, what they become as a push."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound, Unprocessable
from core.links import safe_link
from devices.locales import SUPPORTED_LANGUAGES
from news.models import NewsItem, Section
from news.schemas import NewsDraft, NewsOut, NewsStats
from notifications.content import PushContent, PushSpec
from notifications.models import Notification
from notifications.payloads import check_sizes
from notifications.service import check_app_accepts

KIND = "news.breaking"
PORTAL_APP = "portal"
EDITABLE = frozenset({"draft", "rejected"})


def is_central(principal: Principal) -> bool:
    """Central agencies (root units) and system admins reach every reader; a component portal
    reaches the followers of its own sections."""
    return principal.sees_all_units or principal.unit_path.count("/") == 1


async def load(
    session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, lock: bool = False
) -> tuple[NewsItem, str]:
    """The item and its unit path, if the caller may see it: its author, or editors and
    publishers of the item's unit subtree. Others get 404 (no existence oracle)."""
    item = await session.get(NewsItem, item_id, with_for_update=lock)
    if item is None:
        raise NotFound("News item not found")
    path = (await session.execute(select(Unit.path).where(Unit.id == item.unit_id))).scalar_one()
    staff = principal.has(Permission.NEWS_EDIT) or principal.has(Permission.NEWS_APPROVE)
    author = principal.user is not None and principal.user_id == item.author_id
    if not (author or (staff and principal.can_manage_unit(path))):
        raise NotFound("News item not found")
    return item, path


async def list_visible(
    session: AsyncSession, *, principal: Principal, status: str | None, limit: int
) -> list[NewsItem]:
    query = select(NewsItem).order_by(NewsItem.created_at.desc(), NewsItem.id.desc()).limit(limit)
    if status is not None:
        query = query.where(NewsItem.status == status)
    if principal.has(Permission.NEWS_EDIT) or principal.has(Permission.NEWS_APPROVE):
        if not principal.sees_all_units:
            query = query.join(Unit, Unit.id == NewsItem.unit_id).where(
                Unit.path.startswith(principal.unit_path)
            )
    else:
        query = query.where(NewsItem.author_id == principal.user_id)
    return list((await session.execute(query)).scalars())


def draft_fields(body: NewsDraft) -> dict[str, Any]:
    """The columns of a news item taken from a draft body (also used by the console preview, on
    an item that is never stored)."""
    return {
        "article_id": body.article_id,
        "deep_link": body.deep_link,
        "image_url": body.image_url,
        "title": {str(k): v for k, v in body.title.items()},
        "body": {str(k): v for k, v in body.body.items()},
        "language_policy": body.language_policy,
        "audience": body.audience.model_dump(mode="json"),
        "priority": body.priority,
        "ttl_seconds": body.ttl_seconds,
        "collapse_key": body.collapse_key or f"news-{body.article_id}"[:64].replace(":", "-"),
        "send_at": body.send_at,
    }


async def create_draft(session: AsyncSession, *, principal: Principal, body: NewsDraft) -> NewsItem:
    if principal.unit_id is None:
        raise Forbidden("Only staff of a unit may write news", code="permission_denied")
    fields = draft_fields(body)
    now = utcnow()
    item = NewsItem(
        id=uuid.uuid4(),
        unit_id=principal.unit_id,
        author_id=principal.user_id,
        status="draft",
        created_at=now,
        updated_at=now,
        **fields,
    )
    await validate(session, principal=principal, item=item)
    session.add(item)
    await session.flush()
    audit.record(
        session,
        action="news.created",
        object_type="news_item",
        object_id=item.id,
        details={"article_id": body.article_id, "languages": sorted(fields["title"])},
    )
    return item


async def update_draft(
    session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, body: NewsDraft
) -> NewsItem:
    """The author, or an editor of the unit, reworks a draft or a rejected item."""
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.status not in EDITABLE:
        raise Conflict(f"A {item.status} item cannot be edited", code="news_not_editable")
    if principal.user_id != item.author_id and not principal.has(Permission.NEWS_EDIT):
        raise Forbidden("Only the author or an editor may edit this item", code="permission_denied")
    for name, value in draft_fields(body).items():
        setattr(item, name, value)
    await validate(session, principal=principal, item=item)
    item.updated_at = utcnow()
    audit.record(session, action="news.edited", object_type="news_item", object_id=item.id)
    return item


async def validate(session: AsyncSession, *, principal: Principal, item: NewsItem) -> None:
    """Everything that can be known before approval: the audience is the portal's to reach,
    someone would get it, the send time is ahead, and every language's push fits 4096 bytes."""
    audience = item.audience
    if audience.get("all_readers") and not is_central(principal):
        raise Forbidden(
            "Only central editors may send to all readers; choose your portal's sections",
            code="broadcast_not_allowed",
        )
    if audience.get("sections"):
        rows = (
            await session.execute(
                select(Section.code, Section.unit_id, Unit.path)
                .outerjoin(Unit, Unit.id == Section.unit_id)
                .where(Section.code.in_(audience["sections"]), Section.archived_at.is_(None))
            )
        ).all()
        known = {row.code for row in rows}
        unknown = sorted(set(audience["sections"]) - known)
        if unknown:
            raise Unprocessable(
                "Unknown sections", code="unknown_sections", details=[{"section": c} for c in unknown]
            )
        if not is_central(principal):
            foreign = sorted(
                row.code for row in rows if row.path is None or not principal.can_manage_unit(row.path)
            )
            if foreign:
                raise Forbidden(
                    "A component portal sends only to its own sections",
                    code="section_not_yours",
                    details=[{"section": c} for c in foreign],
                )
    if not reader_languages(item):
        raise Unprocessable(
            "No reader language is left: with skip_missing, translate into one of the audience's languages",
            code="no_languages",
        )
    if item.send_at is not None and item.send_at <= utcnow():
        raise Unprocessable("The send time is in the past", code="send_at_past")
    content = push_content(item)
    # The portal app takes it (enabled, in these languages) now, not only when a scheduled
    # item is released, where a refusal has nobody to answer to.
    await check_app_accepts(session, app=PORTAL_APP, content=content)
    check_sizes(PushSpec(id=str(item.id), content=content))


def reader_languages(item: NewsItem) -> list[str]:
    """Reader languages that get this push: the audience's (all six when unset), minus those
    without a translation when the policy skips them."""
    wanted = item.audience.get("languages") or list(SUPPORTED_LANGUAGES)
    if item.language_policy == "skip_missing":
        wanted = [language for language in wanted if language in item.title]
    return [language for language in SUPPORTED_LANGUAGES if language in wanted]


def push_content(item: NewsItem) -> PushContent:
    """What the item's push says: the one place a news item becomes push content (its release,
    its size checks and its preview all read this)."""
    data = {"news_id": str(item.id), "article_id": item.article_id}
    # The image as today's link rules allow it (core/links.py): an older row's may not pass.
    image_url = safe_link(item.image_url, https_only=True)
    if image_url:
        data["image_url"] = image_url
    return PushContent(
        kind=KIND,
        priority=item.priority,
        sensitivity="public",
        title=dict(item.title),
        body=dict(item.body),
        data=data,
        deep_link=item.deep_link,
        collapse_key=item.collapse_key,
        ttl_seconds=item.ttl_seconds,
    )


def notification_audience(item: NewsItem) -> dict[str, Any]:
    """The delivery core's audience (notifications/audience.py) for this item."""
    audience = item.audience
    mapped: dict[str, Any] = (
        {"all": True} if audience.get("all_readers") else {"topics": audience["sections"]}
    )
    languages = reader_languages(item)
    if len(languages) < len(SUPPORTED_LANGUAGES):
        mapped["languages"] = languages
    if audience.get("provinces"):
        mapped["provinces"] = audience["provinces"]
    if audience.get("min_app_version"):
        mapped["min_app_version"] = audience["min_app_version"]
    return mapped


async def out(session: AsyncSession, item: NewsItem) -> NewsOut:
    result = NewsOut.model_validate(item)
    if item.notification_id is None:
        return result
    notification = await session.get(Notification, item.notification_id)
    if notification is None:
        return result
    stats = NewsStats(
        notification_status=notification.status,
        targeted=notification.targeted,
        sent=notification.sent,
        invalid=notification.invalid,
        failed=notification.failed,
        cancelled=notification.cancelled,
        pending=notification.pending,
    )
    return result.model_copy(update={"stats": stats})
