"""Breaking news: compose (with a live preview), the approvals queue and the item page.

Every action is the workflow's own (``news.workflow``) behind the API's permission; approving and
recalling need a fresh TOTP step-up, as on ``POST /v1/news/{id}/approve``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api.deps import Require, SessionDep
from auth.principal import Principal
from auth.roles import Permission
from console.forms import invalid, see_other, step_up
from console.security import verify_csrf
from console.templating import VN_TIME, render
from core.codes import ascii_digits
from core.errors import ChuongError, Unprocessable
from core.types import bounded_instant
from devices.locales import SUPPORTED_LANGUAGES
from news import preview as news_preview
from news import sections as section_service
from news import service as news
from news import workflow
from news.models import NewsItem
from news.schemas import NewsDraft

router = APIRouter(prefix="/news", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Drafter = Depends(Require(Permission.NEWS_DRAFT))
Approver = Depends(Require(Permission.NEWS_APPROVE))
Reason = Annotated[str, Form(min_length=1, max_length=1000)]
Code = Annotated[str, Form(max_length=32)]
STATUSES = ("draft", "submitted", "rejected", "scheduled", "sending", "sent", "cancelled", "recalled")


def _local_datetime(value: str) -> dt.datetime | None:
    """``<input type=datetime-local>`` is Vietnam time (no DST, D-50)."""
    if not value.strip():
        return None
    try:
        # The API's bounds (core/types.py): a year-9999 time must not reach the database.
        return bounded_instant(dt.datetime.fromisoformat(value.strip()).replace(tzinfo=VN_TIME))
    except ValueError:
        raise Unprocessable("send_at is not a date and time", code="validation_error") from None


def draft_from_form(form: FormData) -> NewsDraft:
    """The compose form → the API's request model (same validation as ``POST /v1/news``)."""

    def text(name: str, limit: int = 4000) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    titles = {lang: text(f"title_{lang}") for lang in SUPPORTED_LANGUAGES if text(f"title_{lang}")}
    bodies = {lang: text(f"body_{lang}") for lang in SUPPORTED_LANGUAGES if text(f"body_{lang}")}
    sections = [v for v in form.getlist("sections") if isinstance(v, str) and v]
    languages = [v for v in form.getlist("languages") if isinstance(v, str) and v]
    # The one rule for typed numbers (core/codes.py): fullwidth digits fold, other scripts' digits
    # (which int() would take) do not; anything else fails the request model below (0 hours).
    ttl_digits = ascii_digits(text("ttl_hours", 4) or "6")
    ttl_hours = int(ttl_digits) if ttl_digits is not None else 0
    try:
        return NewsDraft.model_validate(
            {
                "article_id": text("article_id", 128),
                "deep_link": text("deep_link", 2048),
                "image_url": text("image_url", 2048) or None,
                "title": titles,
                "body": bodies,
                "language_policy": text("language_policy", 16) or "fallback_vi",
                "audience": {
                    "all_readers": not sections,
                    "sections": sections,
                    "languages": languages,
                },
                "priority": text("priority", 16) or "high",
                "ttl_seconds": ttl_hours * 3600,
                "send_at": _local_datetime(text("send_at", 32)),
            }
        )
    except ValidationError as exc:
        raise invalid(exc) from None


async def _compose_context(session: AsyncSession, principal: Principal) -> dict[str, Any]:
    sections = await section_service.list_active(session)
    return {
        "languages": SUPPORTED_LANGUAGES,
        "sections": [section_service.out(s, language="vi") for s in sections],
        "item": None,
    }


@router.get("")
async def news_list(
    request: Request, session: SessionDep, status: str = "", principal: Principal = Drafter
) -> Response:
    items = await news.list_visible(
        session, principal=principal, status=status if status in STATUSES else None, limit=100
    )
    return render(
        request,
        "news/list.html",
        {"items": items, "status": status, "statuses": STATUSES},
        principal=principal,
    )


@router.get("/approvals")
async def approvals(request: Request, session: SessionDep, principal: Principal = Approver) -> Response:
    items = await news.list_visible(session, principal=principal, status="submitted", limit=100)
    return render(request, "news/approvals.html", {"items": items}, principal=principal)


@router.get("/new")
async def compose_page(request: Request, session: SessionDep, principal: Principal = Drafter) -> Response:
    return render(
        request, "news/compose.html", await _compose_context(session, principal), principal=principal
    )


@router.post("/preview")
async def live_preview(request: Request, session: SessionDep, principal: Principal = Drafter) -> Response:
    """The compose form's live preview (HTMX): the exact payloads and sizes the preview service
    computes, for the unsaved text. Nothing is stored."""
    try:
        body = draft_from_form(await request.form())
    except ChuongError as exc:
        return render(
            request,
            "news/_preview.html",
            {"preview": None, "error": exc.message, "live": True},
            principal=principal,
        )
    # A transient item (never added to the session) carries the draft through the same payload
    # rendering and validation as a stored one.
    item = NewsItem(
        id=uuid.uuid4(),
        unit_id=principal.unit_id,
        author_id=principal.user_id,
        status="draft",
        **news.draft_fields(body),
    )
    preview = await news_preview.preview(session, item=item)
    error = None
    try:
        await news.validate(session, principal=principal, item=item)
    except ChuongError as exc:
        error = exc.message + "".join(f" {detail}" for detail in exc.details[:3])
    return render(
        request, "news/_preview.html", {"preview": preview, "error": error, "live": True}, principal=principal
    )


@router.post("/new")
async def create(request: Request, session: SessionDep, principal: Principal = Drafter) -> Response:
    form = await request.form()
    item = await news.create_draft(session, principal=principal, body=draft_from_form(form))
    if form.get("action") == "submit":
        await workflow.submit(session, principal=principal, item_id=item.id, reason=None)
    return see_other(f"/news/{item.id}")


@router.get("/{item_id}")
async def item_page(
    request: Request, item_id: uuid.UUID, session: SessionDep, principal: Principal = Drafter
) -> Response:
    item, _path = await news.load(session, principal=principal, item_id=item_id)
    preview = await news_preview.preview(session, item=item)
    return render(
        request,
        "news/item.html",
        {"item": await news.out(session, item), "preview": preview},
        principal=principal,
    )


@router.get("/{item_id}/edit")
async def edit_page(
    request: Request, item_id: uuid.UUID, session: SessionDep, principal: Principal = Drafter
) -> Response:
    item, _path = await news.load(session, principal=principal, item_id=item_id)
    context = await _compose_context(session, principal)
    context["item"] = await news.out(session, item)
    return render(request, "news/compose.html", context, principal=principal)


@router.post("/{item_id}/edit")
async def edit(
    request: Request, item_id: uuid.UUID, session: SessionDep, principal: Principal = Drafter
) -> Response:
    """Rework a draft or a rejected item (``PUT /v1/news/{id}``), optionally submitting it."""
    form = await request.form()
    await news.update_draft(session, principal=principal, item_id=item_id, body=draft_from_form(form))
    if form.get("action") == "submit":
        await workflow.submit(session, principal=principal, item_id=item_id, reason=None)
    return see_other(f"/news/{item_id}")


@router.post("/{item_id}/submit")
async def submit(item_id: uuid.UUID, session: SessionDep, principal: Principal = Drafter) -> Response:
    await workflow.submit(session, principal=principal, item_id=item_id, reason=None)
    return see_other(f"/news/{item_id}")


@router.post("/{item_id}/approve")
async def approve(
    request: Request,
    item_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    send_at: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
    principal: Principal = Approver,
) -> Response:
    await step_up(request, session, principal, totp_code)
    await workflow.approve(
        session,
        principal=principal,
        item_id=item_id,
        send_at=_local_datetime(send_at),
        reason=reason.strip() or None,
    )
    return see_other(f"/news/{item_id}/delivery")


@router.post("/{item_id}/reject")
async def reject(
    item_id: uuid.UUID, session: SessionDep, reason: Reason, principal: Principal = Approver
) -> Response:
    await workflow.reject(session, principal=principal, item_id=item_id, reason=reason.strip())
    return see_other(f"/news/{item_id}")


@router.post("/{item_id}/cancel")
async def cancel(
    item_id: uuid.UUID, session: SessionDep, reason: Reason, principal: Principal = Drafter
) -> Response:
    await workflow.cancel(session, principal=principal, item_id=item_id, reason=reason.strip())
    return see_other(f"/news/{item_id}")


@router.post("/{item_id}/recall")
async def recall(
    request: Request,
    item_id: uuid.UUID,
    session: SessionDep,
    reason: Reason,
    totp_code: Code = "",
    principal: Principal = Approver,
) -> Response:
    await step_up(request, session, principal, totp_code)
    await workflow.recall(session, principal=principal, item_id=item_id, reason=reason.strip())
    return see_other(f"/news/{item_id}")
