"""Tracking notifications go through the delivery core (``notifications.service.create``): an
inbox item per recipient plus a push. Classified tasks (D-17) go out as ``classified``: the push
is data-only with an opaque id, and the texts themselves are a status line that names no task,
so not even the inbox's full view shows task content."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from devices import apps
from notifications import service as notifications
from notifications.schemas import Audience, NotificationCreate
from tracking import texts
from tracking.rules import Rules

# The sweep and the sender act for the service itself, not for a person or a connected system:
# their notifications name this id as creator (kind "system"). Their audience is authorised by
# construction (the task's own people, its unit's leaders, the standing agency).
SYSTEM_SENDER_ID = uuid.UUID("00000000-0000-4000-8000-0000000c4a9e")
REMINDER_TTL_SECONDS = 3 * 24 * 3600
CLASSIFIED_TITLE = texts.render("tracking.classified.title")
CLASSIFIED_BODY = texts.render("tracking.classified.body")
MAX_AUDIENCE = 10_000


@dataclass
class Message:
    kind: str  # tracking.assigned, tracking.reminder.deadline, …
    title: str
    body: str
    recipients: Sequence[uuid.UUID]
    classified: bool = False
    priority: str = "normal"
    data: dict[str, str] = field(default_factory=dict)
    deep_link: str | None = None


async def send(
    session: AsyncSession, *, principal: Principal | None, message: Message, rules: Rules
) -> uuid.UUID | None:
    """``principal``: the connected system whose intake caused the event (its audience is checked
    like any sender's); None for the service's own reminders. None, and nothing sent, while the
    tracking app is switched off: the event itself (an intake, a refusal, a request) is still
    recorded, rather than refused with the app's 422."""
    if not await app_enabled(session):
        return None
    if principal is not None:
        notification, _ = await notifications.create(
            session, principal=principal, body=_request(message, rules), idempotency_key=None
        )
        return notification.id
    return (await send_many(session, messages=[message], rules=rules))[0]


TRACKING_APP = "tracking"


async def app_enabled(session: AsyncSession) -> bool:
    """Is the tracking app taking pushes? An operator can switch it off (console, Apps page);
    its reminders then wait, pending, instead of failing their chunk at every run."""
    app = await apps.find(session, TRACKING_APP)
    return app is not None and app.enabled


async def send_many(session: AsyncSession, *, messages: Sequence[Message], rules: Rules) -> list[uuid.UUID]:
    """The service's own notifications (reminders, digests), written set-based in the caller's
    transaction (``notifications.service.create_prepared_many``); their ids in the order of
    ``messages``."""
    prepared = []
    for message in messages:
        create = _request(message, rules)
        prepared.append(
            notifications.Prepared(
                content=create.content(),
                app=create.app,
                audience=create.audience.model_dump(mode="json"),
                audience_summary={"users": len(create.audience.users)},
                created_by_kind="system",
                created_by_id=SYSTEM_SENDER_ID,
                unit_id=None,
            )
        )
    return [notification.id for notification in await notifications.create_prepared_many(session, prepared)]


def _request(message: Message, rules: Rules) -> NotificationCreate:
    """The message as a request body: classified content (D-17) becomes the status line."""
    recipients = list(dict.fromkeys(message.recipients))[:MAX_AUDIENCE]
    if message.classified:
        title, body, data, deep_link, sensitivity = CLASSIFIED_TITLE, CLASSIFIED_BODY, {}, None, "classified"
    else:
        title, body, data, deep_link = message.title, message.body, message.data, message.deep_link
        sensitivity = rules.open_sensitivity
    return NotificationCreate(
        app=TRACKING_APP,
        kind=message.kind,
        priority=message.priority,
        sensitivity=sensitivity,
        title={"vi": title[:256]},
        body={"vi": body[:4000]},
        data=data,
        deep_link=deep_link,
        ttl_seconds=REMINDER_TTL_SECONDS,
        audience=Audience(users=recipients),
    )


def task_link(task_id: uuid.UUID) -> str:
    return f"chuong-tracking://tasks/{task_id}"
