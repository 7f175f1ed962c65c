"""Breaking-news items: drafts, the four-eyes workflow, preview and progress (issue 5)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from api.deps import SessionDep, require
from auth.principal import Principal
from auth.roles import Permission
from news import preview as news_preview
from news import service as news
from news import workflow
from news.schemas import ApproveIn, NewsDraft, NewsOut, PreviewOut, ReasonIn, TransitionIn

router = APIRouter(tags=["news"])

Status = Literal["draft", "submitted", "rejected", "scheduled", "sending", "sent", "cancelled", "recalled"]


@router.post("", response_model=NewsOut, status_code=status.HTTP_201_CREATED)
async def create_news(
    body: NewsDraft, session: SessionDep, principal: Principal = require(Permission.NEWS_DRAFT)
) -> NewsOut:
    """A reporter or editor writes a draft. Payload sizes, sections and the send time are
    checked now (422), not at approval."""
    return await news.out(session, await news.create_draft(session, principal=principal, body=body))


@router.get("", response_model=list[NewsOut])
async def list_news(
    session: SessionDep,
    status_filter: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = require(Permission.NEWS_DRAFT),
) -> list[NewsOut]:
    """Newest first: editors and publishers see their portal's items, reporters their own."""
    items = await news.list_visible(session, principal=principal, status=status_filter, limit=limit)
    return [await news.out(session, item) for item in items]


@router.get("/{item_id}", response_model=NewsOut)
async def get_news(
    item_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.NEWS_DRAFT)
) -> NewsOut:
    """The item, its state and, once released, delivery counters
    (targeted = sent + invalid + failed + cancelled + pending)."""
    item, _ = await news.load(session, principal=principal, item_id=item_id)
    return await news.out(session, item)


@router.put("/{item_id}", response_model=NewsOut)
async def update_news(
    item_id: uuid.UUID,
    body: NewsDraft,
    session: SessionDep,
    principal: Principal = require(Permission.NEWS_DRAFT),
) -> NewsOut:
    """Replace a draft's (or a rejected item's) content."""
    item = await news.update_draft(session, principal=principal, item_id=item_id, body=body)
    return await news.out(session, item)


@router.get("/{item_id}/preview", response_model=PreviewOut)
async def preview_news(
    item_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.NEWS_DRAFT)
) -> PreviewOut:
    """The exact Android (FCM) and iOS (APNs) payload per reader language, bytes against the
    4096-byte limit, and live devices per language and platform."""
    item, _ = await news.load(session, principal=principal, item_id=item_id)
    return await news_preview.preview(session, item=item)


@router.post("/{item_id}/submit", response_model=NewsOut)
async def submit_news(
    item_id: uuid.UUID,
    session: SessionDep,
    body: TransitionIn | None = None,
    principal: Principal = require(Permission.NEWS_DRAFT),
) -> NewsOut:
    reason = body.reason if body is not None else None
    item = await workflow.submit(session, principal=principal, item_id=item_id, reason=reason)
    return await news.out(session, item)


@router.post("/{item_id}/reject", response_model=NewsOut)
async def reject_news(
    item_id: uuid.UUID,
    body: ReasonIn,
    session: SessionDep,
    principal: Principal = require(Permission.NEWS_APPROVE),
) -> NewsOut:
    """Back to the author with a reason; they edit and submit again."""
    item = await workflow.reject(session, principal=principal, item_id=item_id, reason=body.reason)
    return await news.out(session, item)


@router.post("/{item_id}/approve", response_model=NewsOut)
async def approve_news(
    item_id: uuid.UUID,
    session: SessionDep,
    body: ApproveIn | None = None,
    principal: Principal = require(Permission.NEWS_APPROVE, step_up=True),
) -> NewsOut:
    """A publisher other than the author and the submitter approves, with a TOTP verified in the
    last five minutes (`POST /v1/auth/mfa/verify`). With a send time → `scheduled`; otherwise the
    push starts at once (`sending`)."""
    body = body or ApproveIn()
    item = await workflow.approve(
        session, principal=principal, item_id=item_id, send_at=body.send_at, reason=body.reason
    )
    return await news.out(session, item)


@router.post("/{item_id}/cancel", response_model=NewsOut)
async def cancel_news(
    item_id: uuid.UUID,
    body: ReasonIn,
    session: SessionDep,
    principal: Principal = require(Permission.NEWS_DRAFT),
) -> NewsOut:
    """Stop it before or during sending: once this has answered, no further provider request
    starts; only those already on the wire finish (docs/delivery.md, "Cancel")."""
    item = await workflow.cancel(session, principal=principal, item_id=item_id, reason=body.reason)
    return await news.out(session, item)


@router.post("/{item_id}/recall", response_model=NewsOut)
async def recall_news(
    item_id: uuid.UUID,
    body: ReasonIn,
    session: SessionDep,
    principal: Principal = require(Permission.NEWS_APPROVE, step_up=True),
) -> NewsOut:
    """After sending: a retract push with the same collapse key to the devices that got it, and
    the inbox item marked withdrawn."""
    item = await workflow.recall(session, principal=principal, item_id=item_id, reason=body.reason)
    return await news.out(session, item)
