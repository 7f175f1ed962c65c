"""Creating and reading notifications (delivery-core issue, §4)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit, User
from auth.principal import Principal
from core.after_commit import call_after_commit
from core.db import utcnow
from core.errors import Conflict, Forbidden, NotFound, Unprocessable
from core.jobs import BULK_QUEUE, FAN_OUT_PREFIX, HIGH_QUEUE, JobName, defer
from devices import apps
from notifications import cancellation, on_created, outbox
from notifications.content import PushContent, PushSpec
from notifications.models import DeliveryBatch, Notification
from notifications.payloads import check_sizes
from notifications.policy import ApprovedRelease, check_direct_push
from notifications.schemas import NotificationCreate

# Namespace of the advisory locks that make concurrent requests with one Idempotency-Key 409.
IDEMPOTENCY_LOCK_NAMESPACE = 0x6964656D


URGENT_PRIORITIES = ("high", "emergency")
PRIORITIES = ("normal", *URGENT_PRIORITIES)


def queue_for(priority: str) -> str:
    return HIGH_QUEUE if priority in URGENT_PRIORITIES else BULK_QUEUE


def sharing_queue(priority: str) -> tuple[str, ...]:
    """The priorities whose batches go out through the same queue as ``priority``'s."""
    return priorities_of(queue_for(priority))


def priorities_of(queue: str) -> tuple[str, ...]:
    """The priorities whose batches go out through ``queue``."""
    return tuple(p for p in PRIORITIES if queue_for(p) == queue)


async def create(
    session: AsyncSession, *, principal: Principal, body: NotificationCreate, idempotency_key: str | None
) -> tuple[Notification, bool]:
    """Returns (notification, created). Same key + same body → the earlier notification; same key
    + different body → 422; the same key while the first request is still running → 409."""
    creator_kind, creator_id = _creator(principal)
    request_hash = hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    if idempotency_key is not None:
        lock_key = int.from_bytes(
            hashlib.sha256(f"{creator_id}:{idempotency_key}".encode()).digest()[:4], "big"
        )
        locked = (
            await session.execute(
                text("SELECT pg_try_advisory_xact_lock(:ns, :key)"),
                {"ns": IDEMPOTENCY_LOCK_NAMESPACE, "key": lock_key - (1 << 31)},
            )
        ).scalar_one()
        if not locked:
            raise Conflict(
                "A request with this Idempotency-Key is in progress", code="idempotency_in_progress"
            )
        existing = (
            await session.execute(
                select(Notification).where(
                    Notification.created_by_id == creator_id, Notification.idempotency_key == idempotency_key
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing.request_hash != request_hash:
                raise Unprocessable(
                    "This Idempotency-Key was used with a different request body",
                    code="idempotency_key_reused",
                )
            return existing, False
    await _check_audience(session, principal=principal, body=body)
    notification = await create_prepared(
        session,
        content=body.content(),
        app=body.app,
        audience=body.audience.model_dump(mode="json"),
        audience_summary=_audience_summary(body),
        created_by_kind=creator_kind,
        created_by_id=creator_id,
        unit_id=principal.unit_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    return notification, True


async def create_approved(
    session: AsyncSession,
    *,
    body: NotificationCreate,
    created_by_id: uuid.UUID,
    unit_id: uuid.UUID | None,
    approved: ApprovedRelease,
) -> Notification:
    """A notification a four-eyes workflow (or a benchmark standing in for one) released, in the
    request model's shape. No route calls this: the API's door is ``create``."""
    return await create_prepared(
        session,
        content=body.content(),
        app=body.app,
        audience=body.audience.model_dump(mode="json"),
        audience_summary=_audience_summary(body),
        created_by_kind="user",
        created_by_id=created_by_id,
        unit_id=unit_id,
        approved=approved,
    )


@dataclass(frozen=True)
class Prepared:
    """One notification for ``create_prepared_many``: its content and an audience the caller has
    already authorised, with who creates it (the arguments of ``create_prepared``)."""

    content: PushContent
    app: str
    audience: dict[str, Any]
    audience_summary: dict[str, object]
    created_by_kind: str
    created_by_id: uuid.UUID
    unit_id: uuid.UUID | None
    idempotency_key: str | None = None
    request_hash: str | None = None
    approved: ApprovedRelease | None = None


async def create_prepared(
    session: AsyncSession,
    *,
    content: PushContent,
    app: str,
    audience: dict[str, Any],
    audience_summary: dict[str, object],
    created_by_kind: str,
    created_by_id: uuid.UUID,
    unit_id: uuid.UUID | None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    approved: ApprovedRelease | None = None,
) -> Notification:
    """Insert a notification whose audience the caller has already authorised (the public API
    above, or a domain workflow such as an approved breaking-news item), audit it, and queue its
    fan-out and inbox work after commit. Payload sizes and the four-eyes rule (notifications/
    policy.py) are checked here, whoever the caller: without ``approved`` (only a four-eyes
    workflow holds one) the push is a direct one and must stay within a small named audience."""
    prepared = Prepared(
        content=content,
        app=app,
        audience=audience,
        audience_summary=audience_summary,
        created_by_kind=created_by_kind,
        created_by_id=created_by_id,
        unit_id=unit_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        approved=approved,
    )
    return (await create_prepared_many(session, [prepared]))[0]


async def check_app_accepts(session: AsyncSession, *, app: str, content: PushContent) -> None:
    """The app exists and takes new notifications, in the languages it offers (from the
    in-process copy of the apps: no query per notification). What ``create_prepared`` checks
    first; a workflow that releases later (a scheduled news item) checks it when it accepts the
    content too."""
    found = await apps.require(session, app)
    offered = {*content.title, *content.body} - found.languages
    if offered:
        raise Unprocessable(
            f"The app {found.code!r} is not published in {', '.join(sorted(offered))}",
            code="language_not_offered",
            details=[{"app": found.code, "language": language} for language in sorted(offered)],
        )


async def create_prepared_many(session: AsyncSession, items: Sequence[Prepared]) -> list[Notification]:
    """``create_prepared`` for many notifications at once, in the caller's transaction, with the
    same checks, audit rows, fan-out jobs and inbox work for each, written set-based: one
    multi-row INSERT … RETURNING (SQLAlchemy pages it), the audit rows in the commit's one batch
    (auth/audit/writer.py) and the inbox hook called once for all. For senders of many small
    notifications (the tracking reminders): a statement per notification would bound them to a
    few hundred a second. Returns the notifications in the order of ``items``."""
    if not items:
        return []
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for item in items:
        await check_app_accepts(session, app=item.app, content=item.content)
        if item.approved is None:
            await check_direct_push(session, app=item.app, audience=item.audience, unit_id=item.unit_id)
        notification_id = uuid.uuid4()
        check_sizes(PushSpec(id=str(notification_id), content=item.content))
        rows.append(
            {
                "id": notification_id,
                "app": item.app,
                **Notification.content_values(item.content),
                "audience": item.audience,
                "idempotency_key": item.idempotency_key,
                "request_hash": item.request_hash,
                "created_by_kind": item.created_by_kind,
                "created_by_id": item.created_by_id,
                "unit_id": item.unit_id,
                "status": "queued",
                "created_at": now,
                "expires_at": now + dt.timedelta(seconds=item.content.ttl_seconds),
            }
        )
    # An ORM bulk insert: the returned objects (server defaults included) join the session as a
    # ``session.get`` would have loaded them, in the order of ``rows``.
    inserted = await session.scalars(
        insert(Notification).returning(Notification, sort_by_parameter_order=True), rows
    )
    notifications = list(inserted.all())
    for item, notification in zip(items, notifications, strict=True):
        audit.record(
            session,
            action="notification.created",
            object_type="notification",
            object_id=notification.id,
            details={
                "app": item.app,
                "kind": item.content.kind,
                "priority": item.content.priority,
                "sensitivity": item.content.sensitivity,
                "audience": item.audience_summary,
                **(_approval_summary(item.approved) if item.approved is not None else {}),
            },
        )
        defer(
            session,
            JobName.FAN_OUT,
            str(notification.id),
            job_id=f"{FAN_OUT_PREFIX}{notification.id}",
            queue=queue_for(item.content.priority),
        )
    # In-app inbox (inbox/fanout.py, registered at start-up): announce broadcasts, queue
    # per-recipient rows (after commit).
    await on_created.created(session, notifications)
    return notifications


def _approval_summary(approved: ApprovedRelease) -> dict[str, object]:
    return {
        "approved_via": approved.workflow,
        "approved_object": str(approved.object_id),
        "approved_by": str(approved.approved_by),
    }


def _creator(principal: Principal) -> tuple[str, uuid.UUID]:
    if principal.api_client is not None:
        return "api_client", principal.api_client.id
    return "user", principal.user_id


def _audience_summary(body: NotificationCreate) -> dict[str, object]:
    audience = body.audience
    return {
        "all": audience.all,
        "users": len(audience.users),
        "units": [str(u) for u in audience.units],
        "roles": list(audience.roles),
        "devices": len(audience.devices),
        "topics": audience.topics,
    }


async def _check_audience(session: AsyncSession, *, principal: Principal, body: NotificationCreate) -> None:
    """Senders reach only their own subtree. Broadcasts (all readers, topics) are nobody's to send
    alone: ``create_prepared`` refuses them (four eyes, notifications/policy.py)."""
    audience = body.audience
    if audience.units:
        paths = (await session.execute(select(Unit.id, Unit.path).where(Unit.id.in_(audience.units)))).all()
        visible = {row.id for row in paths if principal.can_manage_unit(row.path)}
        missing = [str(u) for u in audience.units if u not in visible]
        if missing:
            raise NotFound("Unknown units in the audience", details=[{"unit_id": u} for u in missing])
    if audience.users:
        rows = (
            await session.execute(
                select(User.id, Unit.path)
                .join(Unit, Unit.id == User.unit_id)
                .where(User.id.in_(audience.users))
            )
        ).all()
        visible = {row.id for row in rows if principal.can_manage_unit(row.path)}
        missing = [str(u) for u in audience.users if u not in visible]
        if missing:
            raise NotFound("Unknown users in the audience", details=[{"user_id": u} for u in missing[:50]])
    if audience.devices and not principal.sees_all_units:
        raise Forbidden(
            "Targeting devices directly is reserved to system admins", code="device_targeting_not_allowed"
        )


async def get(session: AsyncSession, *, principal: Principal, notification_id: uuid.UUID) -> Notification:
    notification = await session.get(Notification, notification_id)
    if notification is None or not _visible(principal, notification):
        raise NotFound("Notification not found")
    return notification


def _visible(principal: Principal, notification: Notification) -> bool:
    if principal.sees_all_units:
        return True
    if principal.api_client is not None:
        return notification.created_by_id == principal.api_client.id
    return notification.unit_id == principal.unit_id or notification.created_by_id == principal.user_id


async def cancel(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> int | None:
    """Stop a notification: no fan-out page and no send batch starts after this commits (both
    check the status under the notification's row lock / before claiming). Rows nobody holds
    become ``cancelled`` here; after the commit, and before the transport answers, the workers
    holding its other batches are told and acknowledge that they start no further request
    (notifications/cancellation.py): only requests already on the wire finish, and what those
    batches did not send is cancelled when they let go. Returns how many rows were cancelled
    here, or None when it had already finished."""
    notification = await session.get(Notification, notification_id, with_for_update=True)
    if notification is None:
        raise NotFound("Notification not found")
    if notification.status in ("completed", "expired"):
        return None
    notification.status = "cancelled"
    notification.completed_at = notification.completed_at or now
    notification.fanout_done_at = notification.fanout_done_at or now
    count = await cancel_remaining(session, notification=notification, now=now)
    # Read after the rows were closed: a claim that raced the close committed its lease first
    # (the close waited for it), so every batch that can still send is in this list.
    held = await leased_batches(session, notification_id=notification_id, now=now)
    call_after_commit(session, functools.partial(cancellation.announce, notification_id, held))
    audit.record(
        session,
        action="notification.cancelled",
        object_type="notification",
        object_id=notification_id,
        details={"cancelled_deliveries": count},
    )
    return count


async def cancel_remaining(session: AsyncSession, *, notification: Notification, now: dt.datetime) -> int:
    """Rows not yet attempted become ``cancelled``; those of a batch a worker holds right now are
    left to it (its pushes may be at the provider; it cancels what it did not send when it lets
    the batch go). Also for the sweep after a cancel, should that worker die instead."""
    count = await outbox.close_open(
        session, notification_id=notification.id, now=now, status="cancelled", error_code=None
    )
    if count:
        await session.execute(
            update(Notification)
            .where(Notification.id == notification.id)
            .values(cancelled=Notification.cancelled + count)
        )
        await session.refresh(notification, ["cancelled"])
    return count


async def leased_batches(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> list[int]:
    """Ids of the batches a worker holds right now (leased, not yet settled)."""
    query = select(DeliveryBatch.id).where(
        DeliveryBatch.notification_id == notification_id,
        DeliveryBatch.status == "open",
        DeliveryBatch.leased_until >= now,
    )
    return list((await session.execute(query)).scalars().all())


async def in_flight(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> int:
    """Batches a worker holds right now (leased, not yet settled)."""
    query = select(func.count()).where(
        DeliveryBatch.notification_id == notification_id,
        DeliveryBatch.status == "open",
        DeliveryBatch.leased_until >= now,
    )
    return int((await session.execute(query)).scalar_one())


async def withdraw(session: AsyncSession, *, notification_id: uuid.UUID, now: dt.datetime) -> None:
    """Mark a recalled notification: inboxes show it as withdrawn, without its content."""
    await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.withdrawn_at.is_(None))
        .values(withdrawn_at=now)
    )
    audit.record(
        session, action="notification.withdrawn", object_type="notification", object_id=notification_id
    )
