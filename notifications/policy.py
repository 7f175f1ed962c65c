"""The four-eyes rule of pushes (D-04): one person alone reaches only a small, named audience.

A push to the portal's readers at large (``all``, topic subscribers, or more named accounts and
devices than ``direct_push_max_recipients``) goes through the news workflow: a draft, approved by
another publisher with a fresh step-up (news/workflow.py). Everything else that creates a
notification (``POST /v1/notifications`` for staff and API clients, the tracking app's sender) is
a *direct* push and is held to this rule by ``notifications.service.create_prepared``, the one
function every notification is written through.

The approved path is not a flag in a request: the workflow hands ``create_prepared`` an
``ApprovedRelease`` naming the item and its approver, which no request body maps to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit, User
from core.config import get_settings
from core.errors import Forbidden
from notifications.audience import account_filter

# Audience keys that select readers nobody named: every device, topic subscribers, or (recall)
# whatever an earlier push reached. Only an approved release may use them, whatever the app.
BROADCAST_KEYS = ("all", "topics", "recipients_of")
# The recipient bound applies to every app but the tracking app, which reaches only signed-in
# staff of the sender's subtree, named by account (tracking/notify.py). An app added later (a
# members' handbook, ...) gets the bound: a push to many readers of it goes through a workflow.
TRACKING_APP = "tracking"
NEWS_WORKFLOW_HINT = (
    "create a news item (POST /v1/news), submit it, and have another publisher approve it "
    "with a fresh step-up (POST /v1/news/{id}/approve)"
)


class FourEyesRequired(Forbidden):
    code = "four_eyes_required"


@dataclass(frozen=True)
class ApprovedRelease:
    """A push a four-eyes workflow released: ``approved_by`` is the second person who approved
    ``object_id`` (a news item) with a fresh step-up. Written into the notification's audit row."""

    workflow: str
    object_id: uuid.UUID
    approved_by: uuid.UUID


async def check_direct_push(
    session: AsyncSession, *, app: str, audience: dict[str, Any], unit_id: uuid.UUID | None
) -> None:
    """Refuse (403 ``four_eyes_required``) a push that only the news workflow may send."""
    broadcast = [key for key in BROADCAST_KEYS if audience.get(key)]
    if broadcast:
        raise FourEyesRequired(
            f"A push to all readers or to topics needs a second approver: {NEWS_WORKFLOW_HINT}",
            details=[{"audience": key} for key in broadcast],
        )
    if app == TRACKING_APP:
        return
    limit = get_settings().direct_push_max_recipients
    devices = len(audience.get("devices") or [])
    accounts = await _accounts_reached(session, audience=audience, unit_id=unit_id, limit=limit + 1)
    if devices + accounts > limit:
        raise FourEyesRequired(
            f"This push reaches more than {limit} accounts and devices; send it to fewer named "
            f"recipients, or {NEWS_WORKFLOW_HINT}",
            details=[{"limit": limit, "reached_at_least": devices + accounts}],
        )


async def _accounts_reached(
    session: AsyncSession, *, audience: dict[str, Any], unit_id: uuid.UUID | None, limit: int
) -> int:
    """Active accounts the audience names (users, units with their sub-units, roles in the
    sender's subtree), the same set the fan-outs select; counted up to ``limit``."""
    if not (audience.get("users") or audience.get("units") or audience.get("roles")):
        return 0
    sender_path = None
    if unit_id is not None:
        sender_path = (await session.execute(select(Unit.path).where(Unit.id == unit_id))).scalar()
    reached = (
        select(User.id)
        .where(User.is_active.is_(True), account_filter(audience, sender_unit_path=sender_path))
        .limit(limit)
        .subquery()
    )
    return int((await session.execute(select(func.count()).select_from(reached))).scalar_one())
