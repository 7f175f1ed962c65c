"""The unread badge of a push: for each delivery of one send batch, the unread count its reader
would get from ``GET /v1/inbox/unread-count?app=<the notification's app>`` once the notification
being sent is in their inbox — computed for the whole batch in a handful of queries.

The reader of a delivery is decided as in ``inbox.readers``: the device's account when it has
one (every live device of that account shows the account's count), else the device itself.

Why not ``queries.unread_count`` per reader: that is a statement per device, and a broadcast to
a million devices would add a million statements to the pipeline. Instead the batch reads

1. its devices (and, for signed-in readers, their accounts' live devices: apps and topics),
2. the app's broadcasts of the 90-day window (``inbox.window.broadcast_window``: kept in memory and
   checked against the database's fingerprint, re-read only when a broadcast came or went),
3. per reader, in one statement: the read-all marker, the count of unread own rows, and the
   state of the notification being sent,
4. the exceptions — broadcasts of the window a reader has read or archived one by one, or that
   are also their own row (those count once, as the row) —

and counts each reader's broadcasts with the same in-memory window as ``queries.unread_count``
(a binary search over prefix sums per topic set); tests/inbox/test_badges.py compares the badge
with the API's count.

Badges are capped at ``BADGE_CAP`` (99): phones show "99+" style badges anyway, and the cap
bounds the work of a reader with thousands of unread own rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import User
from devices.models import Device
from devices.service import live_since
from inbox.fanout import TARGETED_KEYS
from inbox.models import BROADCAST_SQL
from inbox.readers import BROADCAST_WINDOW
from inbox.window import Position, broadcast_window
from notifications.models import Notification
from notifications.payloads import BADGE_CAP


@dataclass(frozen=True)
class _Reader:
    id: uuid.UUID
    since: dt.datetime
    # None: the reader has no live device of the app, so no broadcast of it is in their inbox.
    topics: frozenset[str] | None


async def _readers(
    session: AsyncSession, *, device_ids: Sequence[uuid.UUID], app: str, now: dt.datetime
) -> dict[uuid.UUID, _Reader]:
    """device id → its reader, decided exactly as inbox.readers.reader_of does."""
    window_start = now - BROADCAST_WINDOW
    rows = (
        await session.execute(
            select(
                Device.id, Device.user_id, Device.created_at, Device.topics, User.created_at.label("joined")
            )
            .outerjoin(User, User.id == Device.user_id)
            .where(Device.id.in_(device_ids))
        )
    ).all()
    user_ids = {row.user_id for row in rows if row.user_id is not None}
    user_topics: dict[uuid.UUID, set[str]] = {}
    if user_ids:
        for user_id, topics in (
            await session.execute(
                select(Device.user_id, Device.topics).where(
                    Device.user_id.in_(user_ids),
                    Device.app == app,
                    Device.invalidated_at.is_(None),
                    Device.last_seen_at >= live_since(now),
                )
            )
        ).all():
            if user_id is not None:
                user_topics.setdefault(user_id, set()).update(topics or [])
    readers: dict[uuid.UUID, _Reader] = {}
    for row in rows:
        if row.user_id is None:
            readers[row.id] = _Reader(row.id, max(row.created_at, window_start), frozenset(row.topics or []))
        else:
            followed = user_topics.get(row.user_id)
            readers[row.id] = _Reader(
                row.user_id,
                max(row.joined, window_start),
                frozenset(followed) if followed is not None else None,
            )
    return readers


# Per reader: the read-all marker of the app, the unread own rows (partial index
# ix_inbox_items_unread; the notification being sent is left out and added back below, since its
# own row may not be written yet), and the reader's row for the notification being sent.
_STATE_SQL = text(
    """
    SELECT r.id,
           m.read_up_to_created_at, m.read_up_to_id,
           (SELECT count(*) FROM (
                SELECT 1 FROM inbox_items i
                WHERE i.reader_id = r.id AND i.app = :app AND i.read_at IS NULL
                  AND i.archived_at IS NULL AND i.notification_id <> :nid
                LIMIT :cap) AS own) AS own_unread,
           c.reader_id IS NOT NULL AS has_row,
           (c.read_at IS NOT NULL OR c.archived_at IS NOT NULL) AS row_done
    FROM unnest(:readers) AS r(id)
    LEFT JOIN reader_markers m ON m.reader_id = r.id AND m.app = :app
    LEFT JOIN inbox_items c ON c.reader_id = r.id AND c.notification_id = :nid
    """
).bindparams(
    bindparam("readers", type_=ARRAY(UUID(as_uuid=True))), bindparam("nid", type_=UUID(as_uuid=True))
)

# Broadcasts a reader has taken out of the count one by one: read or archived, or also targeted
# at them (then they count once, as the own row).
_EXCEPTIONS_SQL = text(
    f"""
    SELECT s.reader_id, s.notification_id FROM broadcast_states s
    JOIN notifications n ON n.id = s.notification_id AND n.created_at >= :bound AND n.app = :app
    WHERE s.reader_id = ANY(:readers) AND (s.read_at IS NOT NULL OR s.archived_at IS NOT NULL)
    UNION
    SELECT i.reader_id, i.notification_id FROM inbox_items i JOIN notifications n ON n.id = i.notification_id
    WHERE i.reader_id = ANY(:readers) AND i.created_at >= :bound AND n.app = :app
      AND {BROADCAST_SQL.replace("audience", "n.audience")}
    """  # noqa: S608 (a constant)
).bindparams(bindparam("readers", type_=ARRAY(UUID(as_uuid=True))))


async def unread_badges(
    session: AsyncSession,
    *,
    notification_id: uuid.UUID,
    device_ids: Sequence[uuid.UUID],
    now: dt.datetime,
) -> dict[uuid.UUID, int]:
    """device id → the badge for a push of ``notification_id`` to it: its reader's unread count
    for the notification's app, counting that notification as unread (when it is an inbox item)
    unless the reader already read or archived it; at most ``BADGE_CAP``. Devices that no longer
    exist are left out."""
    notification = (
        await session.execute(
            select(
                Notification.app, Notification.created_at, text(BROADCAST_SQL), Notification.audience
            ).where(Notification.id == notification_id)
        )
    ).first()
    if notification is None or not device_ids:
        return {}
    app, created_at, is_broadcast, audience = notification
    # Only what lands in an inbox counts itself: a broadcast or a targeted audience. A control
    # push (a news recall's retract goes to "recipients_of" the original) adds nothing.
    in_inbox = bool(is_broadcast) or any(audience.get(key) for key in TARGETED_KEYS)
    readers = await _readers(session, device_ids=device_ids, app=app, now=now)
    if not readers:
        return {}
    reader_ids = list({reader.id for reader in readers.values()})
    broadcasts = await broadcast_window(session, app=app, now=now)
    states = {
        row.id: row
        for row in (
            await session.execute(
                _STATE_SQL, {"readers": reader_ids, "app": app, "nid": notification_id, "cap": BADGE_CAP}
            )
        ).all()
    }
    exceptions: dict[uuid.UUID, set[uuid.UUID]] = {}
    for reader_id, broadcast_id in (
        await session.execute(_EXCEPTIONS_SQL, {"readers": reader_ids, "bound": broadcasts.bound, "app": app})
    ).all():
        exceptions.setdefault(reader_id, set()).add(broadcast_id)

    current: Position = (created_at, notification_id)
    counts: dict[uuid.UUID, int] = {}
    for reader in {reader.id: reader for reader in readers.values()}.values():
        state = states[reader.id]
        marker: Position | None = (
            (state.read_up_to_created_at, state.read_up_to_id) if state.read_up_to_id is not None else None
        )
        count = int(state.own_unread)
        if reader.topics is not None and count < BADGE_CAP:
            count += broadcasts.unread(
                topics=reader.topics,
                since=reader.since,
                marker=marker,
                skip={notification_id} | exceptions.get(reader.id, set()),
            )
        if state.has_row:
            done = bool(state.row_done)
        elif not in_inbox:
            done = True
        else:
            # Not (yet) their own row: a broadcast read one by one or covered by read-all.
            done = bool(is_broadcast) and (
                notification_id in exceptions.get(reader.id, set())
                or (marker is not None and current <= marker)
            )
        counts[reader.id] = min(BADGE_CAP, count + (0 if done else 1))
    return {device_id: counts[reader.id] for device_id, reader in readers.items()}
