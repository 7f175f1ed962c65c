"""The unread badge of a push: for each delivery of one send batch, the unread count its reader
would get from ``GET /v1/inbox/unread-count?app=<the notification's app>`` once the notification
being sent is in their inbox — computed for the whole batch in two statements.

The reader of a delivery is decided as in ``inbox.readers``: the device's account when it has
one (every live device of that account shows the account's count), else the device itself (whose
inbox has broadcasts of its own app only).

Why not ``queries.unread_count`` per reader: that is a statement per device, and a broadcast to
a million devices would add a million statements to the pipeline. Instead the batch reads

1. the notification being sent, with the fingerprint of its app's broadcast window
   (``inbox.window.broadcast_window``: the app's broadcasts of the 90-day window, kept in memory
   and re-read only when a broadcast came or went);
2. per device, in one statement: its reader, when they arrived and the topics they follow, the
   read-all marker, the broadcasts they read or archived one by one and — only for readers with
   inbox rows — the count of unread own rows, the state of their row for the notification being
   sent and their own rows of the window's time (a broadcast that is also an own row counts
   once, as the row);

and counts each reader's broadcasts with the same in-memory window as ``queries.unread_count``
(a binary search over prefix sums per topic set); tests/inbox/test_badges.py compares the badge
with the API's count.

The common reader — at 5 million readers, an anonymous portal device with no rows, no marker
and nothing read one by one — costs the database a device lookup and three index probes that
find nothing, and Python a binary search and two subtractions. Both statements run on the
session's asyncpg connection (in its transaction once one has begun): they are on the hot path
of every send batch, and asyncpg's records and cached prepared statements cost a fraction of
SQLAlchemy's rows and statement compilation (about ten times less CPU per device, measured).

Badges are capped at ``BADGE_CAP`` (99): phones show "99+" style badges anyway, and the cap
bounds the work of a reader with thousands of unread own rows.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from devices.service import live_since
from inbox.fanout import TARGETED_KEYS
from inbox.models import BROADCAST_SQL
from inbox.readers import BROADCAST_WINDOW
from inbox.window import BroadcastWindow, Position, broadcast_window, fingerprint_of, window_bound
from notifications.payloads import BADGE_CAP

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Python's truthiness of a JSON value, as fan-out decides whether a notification is targeted
# (``any(audience.get(key) ...)``): a missing key, null, false, 0, "", [] and {} are falsy.
_TARGETED_SQL = " OR ".join(
    f"coalesce(n.audience -> '{key}' NOT IN ('null', 'false', '0', '\"\"', '[]', '{{}}'), false)"
    for key in TARGETED_KEYS
)

# $1 notification id, $2 the window's lower bound.
_NOTIFICATION_SQL = f"""
    SELECT n.app, n.created_at, {BROADCAST_SQL.replace("audience", "n.audience")} AS broadcast,
           {_TARGETED_SQL} AS targeted,
           {fingerprint_of(app="n.app", bound="$2")} AS fingerprint
    FROM notifications n WHERE n.id = $1
"""  # noqa: S608 (constants only)

# $1 device ids, $2 app, $3 the notification being sent, $4 the window's start (now − 90 days),
# $5 live_since, $6 the window's lower bound, $7 BADGE_CAP.
#
# One row per device that exists (an account's state is read for each of its devices in the
# batch; an account rarely has more than one there):
# - since: the reader's arrival, not before the window's start, in microseconds since the epoch
#   (an integer decodes several times faster than a timestamp; the window keeps its times so too);
# - topics: as JSON text, which decodes as one string and keys a cache (a batch has few topic
#   sets): an anonymous device's own if it is of the app, an account's the union over its live
#   devices of the app; NULL when no broadcast of the app is in the reader's inbox;
# - the read-all marker of the app;
# - own_unread, current_done, own_recent: NULL unless the reader has inbox rows at all, which
#   costs the common reader one index probe. own_unread counts the unread own rows of the app
#   up to one past the cap (index-only, partial index ix_inbox_items_unread), including the row
#   of the notification being sent if it is unread; current_done is that row's state, NULL
#   without one; own_recent are the own rows of the window's time, of which those that are
#   broadcasts of the window count as rows only (the window's index tells which);
# - done_broadcasts: the broadcasts of the window read or archived one by one, NULL when none
#   (behind an index-only probe too).
_DEVICES_SQL = """
    SELECT b.device_id, b.since, b.topics, m.read_up_to_created_at, m.read_up_to_id,
           CASE WHEN b.has_rows THEN (SELECT count(*) FROM (
                SELECT 1 FROM inbox_items i
                WHERE i.reader_id = b.reader_id AND i.app = $2 AND i.read_at IS NULL
                  AND i.archived_at IS NULL
                LIMIT $7 + 1) AS unread_rows) END AS own_unread,
           CASE WHEN b.has_rows THEN (
                SELECT c.read_at IS NOT NULL OR c.archived_at IS NOT NULL FROM inbox_items c
                WHERE c.reader_id = b.reader_id AND c.notification_id = $3) END AS current_done,
           CASE WHEN b.has_rows THEN (
                SELECT array_agg(i.notification_id) FROM inbox_items i
                WHERE i.reader_id = b.reader_id AND i.created_at >= $6) END AS own_recent,
           CASE WHEN (SELECT true FROM broadcast_states s WHERE s.reader_id = b.reader_id LIMIT 1) THEN (
                SELECT array_agg(s.notification_id) FROM broadcast_states s
                JOIN notifications n ON n.id = s.notification_id AND n.app = $2 AND n.created_at >= $6
                WHERE s.reader_id = b.reader_id AND (s.read_at IS NOT NULL OR s.archived_at IS NOT NULL)
           ) END AS done_broadcasts
    FROM (
        SELECT d.id AS device_id, coalesce(d.user_id, d.id) AS reader_id,
               (extract(epoch FROM greatest(CASE WHEN d.user_id IS NULL THEN d.created_at
                    ELSE (SELECT u.created_at FROM users u WHERE u.id = d.user_id) END, $4)) * 1000000
               )::bigint AS since,
               CASE WHEN d.user_id IS NULL THEN CASE WHEN d.app = $2 THEN array_to_json(d.topics)::text END
               ELSE (SELECT CASE WHEN count(*) > 0 THEN array_to_json(coalesce(
                                array_agg(DISTINCT t.topic) FILTER (WHERE t.topic IS NOT NULL), '{}'))::text
                            END
                     FROM devices l LEFT JOIN LATERAL unnest(l.topics) AS t(topic) ON true
                     WHERE l.user_id = d.user_id AND l.app = $2 AND l.invalidated_at IS NULL
                       AND l.last_seen_at >= $5)
               END AS topics,
               (SELECT true FROM inbox_items i WHERE i.reader_id = coalesce(d.user_id, d.id) LIMIT 1)
                 AS has_rows
        FROM unnest($1::uuid[]) AS batch(id)
        JOIN devices d ON d.id = batch.id
        OFFSET 0  -- computes has_rows once per row, not once per use
    ) AS b
    LEFT JOIN reader_markers m ON m.reader_id = b.reader_id AND m.app = $2
"""


async def _fetch(driver: Any, sql: str, *args: Any) -> list[Any]:
    """Rows of one of the statements above, as asyncpg records."""
    try:
        rows: list[Any] = await driver.fetch(sql, *args)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # As SQLAlchemy would raise it: callers (the send worker) handle database errors as such.
        raise DBAPIError(sql, args, exc) from exc
    return rows


class _TopicSets:
    """One call's cache per topic set, keyed by its JSON text as the statement returns it."""

    def __init__(self, window: BroadcastWindow, current: int | None) -> None:
        self.window = window
        self.current = current
        self.sets: dict[str, frozenset[str]] = {}
        # The window's prefix sums for the set, and the index of the notification being sent
        # when it is one of the broadcasts they count (else -1).
        self.sums: dict[str, tuple[list[int], int]] = {}

    def topics(self, key: str) -> frozenset[str]:
        topics = self.sets.get(key)
        if topics is None:
            topics = self.sets[key] = frozenset(t for t in json.loads(key) if t is not None)
        return topics

    def add_sums(self, key: str) -> tuple[list[int], int]:
        sums = self.window.prefix_sums(self.topics(key))
        current = self.current
        if current is None or sums[current + 1] == sums[current]:
            current = -1
        found = self.sums[key] = (sums, current)
        return found


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
    if not device_ids:
        return {}
    # The session's asyncpg connection: in the session's transaction once one has begun; before
    # its first statement the reads run on their own, which for reads is the same (the session
    # has written nothing yet).
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    bound = window_bound(now)
    found = await _fetch(driver, _NOTIFICATION_SQL, notification_id, bound)
    if not found:
        return {}
    app, created_at, is_broadcast, targeted, fingerprint = found[0]
    # Only what lands in an inbox counts itself: a broadcast or a targeted audience. A control
    # push (a news recall's retract goes to "recipients_of" the original) adds nothing.
    in_inbox = 1 if is_broadcast or targeted else 0
    rows = await _fetch(
        driver,
        _DEVICES_SQL,
        device_ids if isinstance(device_ids, list) else list(device_ids),
        app,
        notification_id,
        now - BROADCAST_WINDOW,
        live_since(now),
        bound,
        BADGE_CAP,
    )
    if not rows:
        return {}
    window = await broadcast_window(session, app=app, now=now, fingerprint=fingerprint)
    times = window.micros
    topic_sets = _TopicSets(window, window.index.get(notification_id))
    sums_of = topic_sets.sums
    current: Position = (created_at, notification_id)
    badges: dict[uuid.UUID, int] = {}
    for device_id, since, topics, marker_at, marker_id, own_unread, current_done, own_recent, done in rows:
        if own_unread is None and marker_id is None and done is None:
            # The common reader: no rows, no marker, nothing read one by one. The broadcasts
            # since they arrived (the first of a time is at bisect_left: times are exact
            # microseconds), the one being sent left out there and counted once, as in_inbox.
            count = in_inbox
            if topics is not None:
                sums, current_index = sums_of.get(topics) or topic_sets.add_sums(topics)
                low = bisect.bisect_left(times, since)
                count += sums[-1] - sums[low]
                if current_index >= low:
                    count -= 1
            badges[device_id] = count if count < BADGE_CAP else BADGE_CAP
            continue
        marker: Position | None = (marker_at, marker_id) if marker_id is not None else None
        # Broadcasts that are not counted as such: read or archived one by one, or own rows.
        exceptions = set(done or ()) | set(own_recent or ())
        count = own_unread or 0
        if current_done is False:
            count -= 1  # the unread row of the notification being sent: it is added below
        count = min(count, BADGE_CAP)
        if topics is not None and count < BADGE_CAP:
            count += window.unread(
                topics=topic_sets.topics(topics),
                since=_EPOCH + dt.timedelta(microseconds=since),
                marker=marker,
                skip={notification_id} | exceptions,
            )
        if current_done is not None:
            sent_done = bool(current_done)
        elif not in_inbox:
            sent_done = True
        else:
            # Not (yet) their own row: a broadcast read one by one or covered by read-all.
            sent_done = bool(is_broadcast) and (
                notification_id in exceptions or (marker is not None and current <= marker)
            )
        badges[device_id] = min(BADGE_CAP, count + (0 if sent_done else 1))
    return badges
