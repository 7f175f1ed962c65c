"""Who is reading an inbox: a signed-in user or an anonymous portal device, with the language,
apps and topics that decide which broadcasts are merged into it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from devices.locales import DEFAULT_LANGUAGE
from devices.models import Device
from devices.service import live_since

# Broadcasts older than this are no longer merged into inboxes (they stay in the notifications
# table until it is purged); it also bounds the unread count of a reader who never reads.
BROADCAST_WINDOW = dt.timedelta(days=90)


@dataclass(frozen=True)
class Reader:
    id: uuid.UUID  # the user's id, or the anonymous device's id
    kind: str  # user | device
    language: str
    # Broadcasts created before this are not in the inbox (registration or account creation).
    since: dt.datetime
    # app → topics followed; an app is present when the reader has a live device of that app.
    subscriptions: dict[str, list[str]] = field(default_factory=dict)
    device_id: uuid.UUID | None = None

    @property
    def apps(self) -> list[str]:
        return sorted(self.subscriptions)


async def reader_of(session: AsyncSession, *, principal: Principal, now: dt.datetime) -> Reader:
    """A device credential reads that device's inbox. A user reads their account's inbox; the
    broadcasts merged into it are those of the apps of their live devices, matching the union of
    those devices' topics, in the language of the most recently seen device (else ``vi``)."""
    window_start = now - BROADCAST_WINDOW
    if principal.device is not None:
        device = principal.device
        return Reader(
            id=device.id,
            kind="device",
            language=device.locale or DEFAULT_LANGUAGE,
            since=max(device.created_at, window_start),
            subscriptions={device.app: sorted(device.topics or [])},
            device_id=device.id,
        )
    user = principal.user
    assert user is not None, "inbox routes admit users and devices only"
    rows = (
        await session.execute(
            select(Device.app, Device.topics, Device.locale)
            .where(
                Device.user_id == user.id,
                Device.invalidated_at.is_(None),
                Device.last_seen_at >= live_since(now),
            )
            .order_by(Device.last_seen_at.desc())
        )
    ).all()
    subscriptions: dict[str, set[str]] = {}
    for row in rows:
        subscriptions.setdefault(row.app, set()).update(row.topics or [])
    return Reader(
        id=user.id,
        kind="user",
        language=rows[0].locale if rows else DEFAULT_LANGUAGE,
        since=max(user.created_at, window_start),
        subscriptions={app: sorted(topics) for app, topics in subscriptions.items()},
    )
