"""The broadcasts of one app's 90-day window, kept in each process's memory: the unread count
and the first page's floor (inbox/queries.py) and push badges (inbox/badges.py) read a reader's
broadcasts from it instead of scanning them in SQL per request.

Broadcasts are few (editors send a handful a day) and the same for every reader. A window is
checked against the database by its fingerprint — the number of broadcasts since its lower bound
and the newest one's time, an index-only scan of the partial index ix_notifications_broadcast —
and re-read when that differs (a broadcast created, deleted or committed late, by any process),
and at least every ``WINDOW_MAX_AGE``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from inbox.models import BROADCAST_SQL
from inbox.readers import BROADCAST_WINDOW
from notifications.models import Notification

Position = tuple[dt.datetime, uuid.UUID]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Sorts before every position of the same time: (since, _FIRST_ID) starts a time range.
_FIRST_ID = uuid.UUID(int=0)
_MICROSECOND = dt.timedelta(microseconds=1)

WINDOW_MAX_AGE = dt.timedelta(seconds=60)


@dataclass
class BroadcastWindow:
    """One app's broadcasts since ``bound``, oldest first, with prefix sums per topic set."""

    bound: dt.datetime
    positions: list[Position]
    to_all: list[bool]
    topics: list[frozenset[str]]
    index: dict[uuid.UUID, int]
    built_at: dt.datetime
    prefixes: dict[frozenset[str], list[int]] = field(default_factory=dict)
    # The positions' times in microseconds since the epoch, for callers that read times as such
    # (push badges: an integer decodes and compares faster than a datetime).
    micros: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.micros = [(created_at - _EPOCH) // _MICROSECOND for created_at, _ in self.positions]

    @property
    def fingerprint(self) -> list[int | None]:
        """As the database computes it: [count, newest created_at in epoch microseconds]."""
        newest = self.positions[-1][0] if self.positions else None
        return [
            len(self.positions),
            None if newest is None else (newest - _EPOCH) // _MICROSECOND,
        ]

    def prefix_sums(self, topics: frozenset[str]) -> list[int]:
        """``sums[p]``: how many of the first ``p`` broadcasts go to all readers or to one of
        ``topics`` (cached per topic set)."""
        sums = self.prefixes.get(topics)
        if sums is None:
            if len(self.prefixes) > 256:  # many distinct topic sets: keep memory bounded
                self.prefixes.clear()
            matches = (a or not t.isdisjoint(topics) for a, t in zip(self.to_all, self.topics, strict=True))
            sums = self.prefixes[topics] = [0, *itertools.accumulate(matches)]
        return sums

    def unread(
        self, *, topics: frozenset[str], since: dt.datetime, marker: Position | None, skip: set[uuid.UUID]
    ) -> int:
        """Broadcasts created at or after ``since``, after ``marker``, to all readers or one of
        ``topics``, except those in ``skip`` (read, archived, or also an own row)."""
        low = bisect.bisect_left(self.positions, (since, _FIRST_ID))
        if marker is not None:
            low = max(low, bisect.bisect_right(self.positions, marker))
        sums = self.prefix_sums(topics)
        count = sums[-1] - sums[low]
        for notification_id in skip:
            position = self.index.get(notification_id)
            if (
                position is not None
                and position >= low
                and (self.to_all[position] or not self.topics[position].isdisjoint(topics))
            ):
                count -= 1
        return count

    def floor(
        self,
        *,
        topics: frozenset[str],
        since: dt.datetime,
        before: Position | None,
        after: Position | None,
        count: int,
    ) -> dt.datetime | None:
        """The time of the ``count``-th newest broadcast for ``topics`` in (``after``,
        ``before``) since ``since``; None when there are fewer (no bound needed then)."""
        high = len(self.positions) if before is None else bisect.bisect_left(self.positions, before)
        low = bisect.bisect_left(self.positions, (since, _FIRST_ID))
        if after is not None:
            low = max(low, bisect.bisect_right(self.positions, after))
        sums = self.prefix_sums(topics)
        if high <= low or sums[high] - sums[low] < count:
            return None
        # The position of the count-th match from the top: the largest p with
        # sums[high] - sums[p] >= count.
        target = sums[high] - count
        position = bisect.bisect_right(sums, target, low, high + 1) - 1
        return self.positions[position][0]


WINDOWS: dict[str, BroadcastWindow] = {}


def window_bound(now: dt.datetime) -> dt.datetime:
    """The lower bound of the cached window: a day before the oldest reader's start (now − 90
    days), truncated to the day so that it moves once a day, not on every call."""
    earliest = now - BROADCAST_WINDOW - dt.timedelta(days=1)
    return earliest.replace(hour=0, minute=0, second=0, microsecond=0)


def fingerprint_sql(app_param: str, bound_param: str) -> str:
    return fingerprint_of(app=f":{app_param}", bound=f":{bound_param}")


def fingerprint_of(*, app: str, bound: str) -> str:
    """The fingerprint as a scalar subquery, for SQL expressions ``app`` and ``bound`` (bound
    parameters or outer columns, never values)."""
    # Index-only scan of ix_notifications_broadcast (the literal predicate selects it). The
    # table is aliased so that ``app`` may name an outer query's column.
    return (
        "(SELECT ARRAY[count(*), (extract(epoch FROM max(w.created_at)) * 1000000)::bigint] "  # noqa: S608
        f"FROM notifications w WHERE {BROADCAST_SQL.replace('audience', 'w.audience')} "
        f"AND w.app = {app} AND w.created_at >= {bound})"
    )


async def _load_window(
    session: AsyncSession, *, app: str, bound: dt.datetime, now: dt.datetime
) -> BroadcastWindow:
    rows = (
        await session.execute(
            select(
                Notification.id,
                Notification.created_at,
                Notification.audience["all"].astext == "true",
                Notification.audience["topics"],
            )
            .where(text(BROADCAST_SQL), Notification.app == app, Notification.created_at >= bound)
            .order_by(Notification.created_at, Notification.id)
        )
    ).all()
    window = BroadcastWindow(
        bound=bound,
        positions=[(row[1], row[0]) for row in rows],
        to_all=[bool(row[2]) for row in rows],
        topics=[frozenset(row[3] if isinstance(row[3], list) else []) for row in rows],
        index={row[0]: position for position, row in enumerate(rows)},
        built_at=now,
    )
    WINDOWS[app] = window
    return window


def _current(
    app: str, bound: dt.datetime, fingerprint: list[int | None] | None, now: dt.datetime
) -> BroadcastWindow | None:
    window = WINDOWS.get(app)
    if window is None or window.bound != bound or now - window.built_at > WINDOW_MAX_AGE:
        return None
    return window if fingerprint is not None and list(fingerprint) == window.fingerprint else None


async def broadcast_window(
    session: AsyncSession, *, app: str, now: dt.datetime, fingerprint: list[int | None] | None = None
) -> BroadcastWindow:
    """The app's window, checked against the database (``fingerprint``, when the caller already
    read it in its own statement), rebuilt if stale."""
    bound = window_bound(now)
    if fingerprint is None:
        fingerprint = (
            await session.execute(
                text("SELECT " + fingerprint_sql("app", "bound")), {"app": app, "bound": bound}
            )
        ).scalar_one()
    window = _current(app, bound, fingerprint, now)
    return window if window is not None else await _load_window(session, app=app, bound=bound, now=now)
