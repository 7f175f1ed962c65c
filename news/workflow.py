"""The four-eyes workflow of a breaking-news push (D-04):

    draft ─submit→ submitted ─approve→ scheduled ─(send time)→ sending → sent
                       │                    └────────(now)────────↗
                       └─reject(reason)→ rejected ─(edit, submit)→ submitted
    scheduled ─(send time, the delivery core refuses it: app disabled, language withdrawn)→ rejected
    cancel: any state before sent (mid-send too) → cancelled;  recall: sent → recalled

A publisher who is neither the author nor the submitter approves, with a fresh TOTP step-up
(checked here, whichever door calls; the routes check it first too). Every transition writes an
audit row with the actor, the person acted for (delegation) and the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.principal import Principal
from auth.roles import Permission
from auth.step_up import require_fresh_step_up
from core.db import utcnow
from core.errors import ChuongError, Conflict, Forbidden, Unprocessable
from core.jobs import HIGH_QUEUE, NEWS_RELEASE_PREFIX, JobName, defer
from inbox.schemas import WITHDRAWN_LINE
from news.models import NewsItem, Section
from news.service import PORTAL_APP, load, notification_audience, push_content, validate
from notifications import fanout
from notifications import service as notifications
from notifications.content import PushContent
from notifications.models import Notification
from notifications.policy import ApprovedRelease

RETRACT_KIND = "news.retract"
CANCELLABLE = frozenset({"draft", "submitted", "rejected", "scheduled", "sending"})


def _transition(
    session: AsyncSession, item: NewsItem, *, to: str, reason: str | None, **details: Any
) -> None:
    previous, item.status = item.status, to
    item.updated_at = utcnow()
    audit.record(
        session,
        action=f"news.{to}",
        object_type="news_item",
        object_id=item.id,
        unit_id=item.unit_id,
        details={"from": previous, "to": to, "reason": reason, **details},
    )


async def submit(
    session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, reason: str | None
) -> NewsItem:
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.status not in ("draft", "rejected"):
        raise Conflict(f"A {item.status} item cannot be submitted", code="news_bad_state")
    if principal.user_id != item.author_id and not principal.has(Permission.NEWS_EDIT):
        raise Forbidden("Only the author or an editor may submit this item", code="permission_denied")
    await validate(session, principal=principal, item=item)
    item.submitted_by, item.submitted_at = _actor_id(principal), utcnow()
    item.rejected_reason = None
    _transition(session, item, to="submitted", reason=reason)
    return item


async def reject(session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, reason: str) -> NewsItem:
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.status != "submitted":
        raise Conflict(f"A {item.status} item cannot be rejected", code="news_bad_state")
    item.rejected_reason = reason
    _transition(session, item, to="rejected", reason=reason, author_id=str(item.author_id))
    return item


def _actor_id(principal: Principal) -> uuid.UUID:
    return principal.actor.id if principal.actor is not None else principal.user_id


async def approve(
    session: AsyncSession,
    *,
    principal: Principal,
    item_id: uuid.UUID,
    send_at: dt.datetime | None,
    reason: str | None,
) -> NewsItem:
    """Four eyes: the approving publisher (and whoever acts for them) must be neither the author
    nor the one who submitted it. Without a send time the push is released at once, in this
    transaction, so the fan-out job is queued the moment it commits."""
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.status != "submitted":
        raise Conflict(f"A {item.status} item cannot be approved", code="news_bad_state")
    people = {principal.user_id, _actor_id(principal)}
    if item.author_id in people or item.submitted_by in people:
        raise Forbidden(
            "Another publisher must approve: you wrote or submitted this item", code="four_eyes_required"
        )
    require_fresh_step_up(principal)
    if send_at is not None:
        item.send_at = send_at
    await validate(session, principal=principal, item=item)
    now = utcnow()
    item.approved_by, item.approved_at = principal.user_id, now
    audit.record(
        session,
        action="news.approved",
        object_type="news_item",
        object_id=item.id,
        unit_id=item.unit_id,
        details={"from": "submitted", "reason": reason, "author_id": str(item.author_id)},
    )
    if item.send_at is not None:
        _transition(session, item, to="scheduled", reason=reason, send_at=item.send_at.isoformat())
        defer(
            session,
            JobName.NEWS_RELEASE,
            str(item.id),
            job_id=f"{NEWS_RELEASE_PREFIX}{item.id}:{int(item.send_at.timestamp())}",
            queue=HIGH_QUEUE,
            defer_until=item.send_at,
        )
        return item
    await release(session, item=item, now=now)
    return item


async def release(session: AsyncSession, *, item: NewsItem, now: dt.datetime) -> Notification:
    """Hand the approved item to the delivery core: one notification whose audience the
    workflow has authorised, fanned out per device by the existing pipeline. The release names
    its second approver: the only way past the four-eyes rule of ``create_prepared``."""
    await _sections_still_offered(session, item)
    notification = await notifications.create_prepared(
        session,
        content=push_content(item),
        app=PORTAL_APP,
        audience=notification_audience(item),
        audience_summary={"news_item": str(item.id), **item.audience},
        created_by_kind="user",
        created_by_id=item.approved_by or item.author_id,
        unit_id=item.unit_id,
        approved=_approved_release(item, workflow="news"),
    )
    # The first page of deliveries is written in this transaction, so the first send batch is
    # queued the moment it commits: one job hop less between approval and the first phone
    # (issue 5: p50 ≤ 300 ms). The fan-out job continues from the stored cursor.
    await fanout.fan_out_page(session, notification_id=notification.id, now=now)
    item.notification_id, item.released_at = notification.id, now
    _transition(session, item, to="sending", reason=None, notification_id=str(notification.id))
    return notification


async def _sections_still_offered(session: AsyncSession, item: NewsItem) -> None:
    """Nothing is sent to a section archived since the approval (a scheduled item): 422
    ``unknown_sections``, which sends the item back to its author (``release_due``)."""
    wanted = set(item.audience.get("sections") or ())
    if not wanted:
        return
    active = set(
        (
            await session.execute(
                select(Section.code).where(Section.code.in_(wanted), Section.archived_at.is_(None))
            )
        ).scalars()
    )
    if gone := sorted(wanted - active):
        raise Unprocessable(
            "Sections no longer offered", code="unknown_sections", details=[{"section": c} for c in gone]
        )


def _approved_release(item: NewsItem, *, workflow: str) -> ApprovedRelease:
    if item.approved_by is None:  # released or recalled only after ``approve`` set it
        raise Conflict("This item was never approved", code="news_bad_state")
    return ApprovedRelease(workflow=workflow, object_id=item.id, approved_by=item.approved_by)


async def release_due(session: AsyncSession, *, now: dt.datetime, limit: int = 20) -> int:
    """Scheduled items whose time has come (the deferred job's and the cron's path alike)."""
    due = (
        (
            await session.execute(
                select(NewsItem)
                .where(NewsItem.status == "scheduled", NewsItem.send_at <= now)
                .order_by(NewsItem.send_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    released = 0
    for item in due:
        try:
            async with session.begin_nested():
                await release(session, item=item, now=now)
        except ChuongError as refused:
            # The delivery core refuses it now (the portal app disabled, a language it no longer
            # offers, ...): back to the author, and the next items go. Raised, it rolled back
            # every release of the run, and every later run again: one item stuck them all.
            await session.refresh(item)
            _release_refused(session, item, refused)
            continue
        released += 1
    return released


def _release_refused(session: AsyncSession, item: NewsItem, refused: ChuongError) -> None:
    reason = f"Not released at its send time: {refused.message}"
    item.rejected_reason = reason
    _transition(session, item, to="rejected", reason=reason, code=refused.code, author_id=str(item.author_id))


async def cancel(session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, reason: str) -> NewsItem:
    """Before sending: the item just ends. While sending: the notification is cancelled; once
    this has committed and answered, only requests already on the wire reach the provider
    (notifications.service.cancel)."""
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.status not in CANCELLABLE:
        hint = "; recall it instead" if item.status == "sent" else ""
        raise Conflict(f"A {item.status} item cannot be cancelled{hint}", code="news_bad_state")
    own = principal.user_id == item.author_id
    if item.status in ("draft", "rejected") and not own and not principal.has(Permission.NEWS_EDIT):
        raise Forbidden("Only the author or an editor may cancel this item", code="permission_denied")
    now = utcnow()
    details: dict[str, Any] = {}
    if item.notification_id is not None:
        cancelled = await notifications.cancel(session, notification_id=item.notification_id, now=now)
        if cancelled is None:
            raise Conflict("It has already been sent; recall it instead", code="news_already_sent")
        details["cancelled_deliveries"] = cancelled
    else:
        item.finished_at = now
    item.cancelled_at = now
    _transition(session, item, to="cancelled", reason=reason, **details)
    return item


async def recall(session: AsyncSession, *, principal: Principal, item_id: uuid.UUID, reason: str) -> NewsItem:
    """After sending: a retract push, with the original's collapse key, to exactly the devices
    that received it, and the inbox item shown as withdrawn."""
    item, _ = await load(session, principal=principal, item_id=item_id, lock=True)
    if item.notification_id is None or item.status not in ("sending", "sent", "cancelled"):
        raise Conflict(f"A {item.status} item has not been sent; cancel it instead", code="news_bad_state")
    require_fresh_step_up(principal)
    now = utcnow()
    stopped: int | None = None
    if item.status == "sending":
        # Stop the rest first; the cron sweeps what a batch in flight leaves (settle below).
        stopped = await notifications.cancel(session, notification_id=item.notification_id, now=now)
    retract = await notifications.create_prepared(
        session,
        content=_retract_content(item),
        app=PORTAL_APP,
        audience={"recipients_of": str(item.notification_id)},
        audience_summary={"recipients_of": str(item.notification_id)},
        created_by_kind="user",
        created_by_id=principal.user_id,
        unit_id=item.unit_id,
        # Reaches exactly the devices the approved release reached, with the fixed withdrawn line.
        approved=_approved_release(item, workflow="news.recall"),
    )
    await notifications.withdraw(session, notification_id=item.notification_id, now=now)
    item.retract_notification_id, item.recalled_at = retract.id, now
    if stopped is None:
        item.finished_at = item.finished_at or now
    _transition(session, item, to="recalled", reason=reason, retract_notification_id=str(retract.id))
    return item


def _retract_content(item: NewsItem) -> PushContent:
    """The retract push: data-only (notifications/payloads.py DATA_ONLY_KINDS), with the
    original's collapse key so that the app removes exactly that push from the tray."""
    return PushContent(
        kind=RETRACT_KIND,
        priority="high",
        sensitivity="public",
        title={language: WITHDRAWN_LINE[language] for language in item.title},
        body={language: WITHDRAWN_LINE[language] for language in item.title},
        data={"action": "retract", "retracts": str(item.notification_id), "news_id": str(item.id)},
        deep_link=None,
        collapse_key=item.collapse_key,
        ttl_seconds=item.ttl_seconds,
    )


async def settle(session: AsyncSession, *, now: dt.datetime, limit: int = 100) -> int:
    """Cron bookkeeping: sending items whose push finished become ``sent``; cancelled items
    sweep rows a batch in flight at cancel time left ``retrying``, until none is held."""
    rows = (
        await session.execute(
            select(NewsItem, Notification)
            .join(Notification, Notification.id == NewsItem.notification_id)
            .where(
                NewsItem.finished_at.is_(None),
                NewsItem.status.in_(("sending", "cancelled", "recalled")),
            )
            .limit(limit)
            .with_for_update(of=NewsItem, skip_locked=True)
        )
    ).all()
    settled = 0
    for item, notification in rows:
        if item.status == "sending" and notification.status in ("completed", "expired"):
            item.finished_at = now
            _transition(session, item, to="sent", reason=None, sent=notification.sent)
            settled += 1
        elif item.status != "sending" and notification.status == "cancelled":
            await notifications.cancel_remaining(session, notification=notification, now=now)
            if await notifications.in_flight(session, notification_id=notification.id, now=now) == 0:
                item.finished_at = now
                settled += 1
    return settled
